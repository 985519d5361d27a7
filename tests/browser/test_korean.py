"""The page in Korean and English (#26.5): chosen by the browser's language,
a switch that is remembered, every text in the language in use (the API's
errors by code included), times labelled with the venue's zone, amounts as
Korean buyers write them. Each test failed on the English-only page."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.test_waiting_room import TIMEOUT_MS, seat

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def korean_page(browser: Any, server: str, **ctx: Any) -> Page:
    context = browser.new_context(
        locale="ko-KR", timezone_id="Asia/Seoul", viewport={"width": 1200, "height": 900}, **ctx
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/")
    return page


def to_the_map(page: Page, guest: str, join: str, heading: str) -> None:
    page.get_by_role("button", name=guest).click()
    page.get_by_role("button", name=join).first.click()
    expect(page.get_by_role("heading", name=re.compile(heading))).to_be_visible()
    expect(page.locator("#seat-map .seat").first).to_be_visible()


def test_a_korean_browser_gets_the_page_in_korean(browser: Any, server: str) -> None:
    page = korean_page(browser, server)
    expect(page.get_by_role("heading", name="티켓 예매")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "ko"
    assert page.title() == "frontrow \u2013 티켓"
    to_the_map(page, "게스트로 계속하기", "대기열 들어가기", "좌석 선택")
    # dates in Korean, labelled with the venue's zone
    first_date = page.locator("#date-list button").first
    expect(first_date).to_contain_text("KST")
    expect(first_date).to_contain_text(re.compile(r"\d+월 \d+일"))
    expect(first_date).to_contain_text("석 남음")
    # one sentence, one language: the hold's time is Korean too
    seat(page, 13, "선택 가능").click()
    message = page.locator("#msg-map")
    expect(message).to_contain_text("까지 잡아 두었습니다")
    expect(message).to_contain_text(re.compile("오전|오후"))
    assert not re.search(r"[A-Za-z]{3,}", message.inner_text().replace("B-1-3", ""))
    expect(page.locator("#hold-list")).to_contain_text("80,000원")
    # an amount written with commas is an amount; the API's error by its code, in Korean
    page.get_by_role("button", name=re.compile("결제$")).click()
    expect(page.get_by_role("alert")).to_contain_text("잔액이 부족합니다")
    page.get_by_label("충전할 금액 (원)").fill("100,000")
    page.get_by_role("button", name="충전하기").click()
    expect(page.locator("#balance")).to_have_text("100,000원")
    # nothing English left on the booking view but labels and numbers
    text = page.locator("#view-booking").inner_text()
    words = set(re.findall(r"\b[A-Za-z]{4,}\b", text)) - {"frontrow", "Winter", "Night", "live"}
    assert not words, words
    page.context.close()


def test_the_language_switch_is_remembered(browser: Any, server: str) -> None:
    page = korean_page(browser, server)
    switch = page.get_by_role("button", name="View in English")
    assert switch.get_attribute("lang") == "en"
    switch.click()
    expect(page.get_by_role("heading", name="Get your tickets")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "en"
    again = page.context.new_page()  # a new tab of the same browser
    again.goto(server + "/")
    expect(again.get_by_role("heading", name="Get your tickets")).to_be_visible()
    back = again.get_by_role("button", name="한국어로 보기")
    assert back.get_attribute("lang") == "ko"
    back.click()
    expect(again.get_by_role("heading", name="티켓 예매")).to_be_visible()
    page.context.close()


def test_the_html_alone_speaks_the_browser_s_language(browser: Any, server: str) -> None:
    """Before any script (a slow line), a Korean browser reads Korean only."""
    page = korean_page(browser, server, java_script_enabled=False)
    loading = page.locator("#view-loading")
    expect(loading.get_by_role("heading", name=re.compile("티켓 페이지를 준비"))).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "ko"
    assert not re.search(r"[A-Za-z]{4,}", loading.inner_text()), loading.inner_text()
    page.context.close()


def test_lang_in_the_address_chooses_and_is_remembered(browser: Any, server: str) -> None:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/?lang=ko")
    expect(page.get_by_role("heading", name="티켓 예매")).to_be_visible()
    page.goto(server + "/")  # remembered, for the script and for the server's first paint
    expect(page.get_by_role("heading", name="티켓 예매")).to_be_visible()
    assert '<html lang="ko">' in page.request.get(server + "/").text()
    page.get_by_role("button", name="View in English").click()
    expect(page.get_by_role("heading", name="Get your tickets")).to_be_visible()
    assert '<html lang="en">' in page.request.get(server + "/").text()
    context.close()


def test_english_also_names_the_venue_zone_and_takes_commas(browser: Any, server: str) -> None:
    context = browser.new_context(locale="en-US", timezone_id="America/Los_Angeles")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/")
    assert page.evaluate("document.documentElement.lang") == "en"
    to_the_map(page, "Continue as a guest", "Join the queue", "Choose your seats")
    first_date = page.locator("#date-list button").first
    expect(first_date).to_contain_text(re.compile(r"7:00 PM KST"))
    assert not HANGUL.search(page.locator("#view-booking").inner_text())
    page.get_by_label("Amount to add (won)").fill("₩50,000")
    page.get_by_role("button", name="Add money").click()
    expect(page.locator("#balance")).to_have_text("₩50,000")
    page.get_by_label("Amount to add (won)").fill("12,34x")
    page.get_by_role("button", name="Add money").click()
    expect(page.locator("#msg-charge")).to_contain_text("like 100,000")
    expect(page.locator("#balance")).to_have_text("₩50,000")
    context.close()


def test_both_languages_have_every_text(browser: Any, server: str) -> None:
    page = browser.new_context().new_page()
    page.goto(server + "/")
    keys = page.evaluate(
        """async () => {
            const en = (await import("/static/i18n/en.js")).default;
            const ko = (await import("/static/i18n/ko.js")).default;
            const used = [...document.querySelectorAll("[data-t]")].map((el) => el.dataset.t)
              .concat([...document.querySelectorAll("[data-t-attr]")]
                .flatMap((el) => el.dataset.tAttr.split(";").map((p) => p.split(":")[1])));
            return { en: Object.keys(en).sort(), ko: Object.keys(ko).sort(), used };
        }"""
    )
    assert keys["en"] == keys["ko"]
    assert set(keys["used"]) <= set(keys["en"])
    source = page.evaluate("fetch('/static/app.js').then((r) => r.text())")
    source += page.evaluate("fetch('/static/api.js').then((r) => r.text())")
    for key in set(re.findall(r'\bt\("([a-zA-Z.]+)"', source)):
        assert key in keys["en"], key
    page.context.close()
