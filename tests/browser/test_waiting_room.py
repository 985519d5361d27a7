"""The waiting-room page in real headless Chromium against a real server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

TIMEOUT_MS = 15_000


def open_page(
    browser: Any, server: str, width: int = 1200, height: int = 900, **options: Any
) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/")
    return page


def seat(page: Page, seat_no: int, state: str = "available") -> Any:
    """A seat of the map by its seat_no; its accessible name ends with its state."""
    return page.locator(f'#seat-map [data-seat="{seat_no}"][aria-label$=", {state}"]')


def sign_in_and_join(page: Page) -> None:
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.get_by_role("heading", name="Concerts")).to_be_visible()
    page.get_by_role("button", name="Join the queue").first.click()


def wait_for_turn(page: Page) -> None:
    expect(page.get_by_role("heading", name=re.compile("Choose your seats"))).to_be_visible()
    expect(page.locator("#seat-map .seat").first).to_be_visible()


def test_sign_in_to_receipt(browser: Any, server: str, tmp_path: Path) -> None:
    page = open_page(browser, server)
    expect(page.get_by_role("heading", name="Get your tickets")).to_be_visible()
    page.screenshot(path=tmp_path / "1-signin.png", full_page=True)
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.get_by_role("heading", name="Concerts")).to_be_visible()
    page.screenshot(path=tmp_path / "2-concerts.png", full_page=True)
    page.get_by_role("button", name="Join the queue").first.click()
    wait_for_turn(page)
    expect(page.locator("#session-left")).to_contain_text("min")

    seat(page, 12).click()
    expect(page.locator("#hold-list")).to_contain_text("Seat B-1-2")
    expect(seat(page, 12, "held by you")).to_be_visible()
    expect(page.locator("#cart-timer")).to_have_text(re.compile(r"[45]:\d\d left"))
    page.screenshot(path=tmp_path / "3-seat-map.png", full_page=True)

    # pay without money first: the page says why, and the hold stays
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.get_by_role("alert")).to_contain_text("balance is too low")
    expect(page.locator("#hold-list")).to_contain_text("Seat B-1-2")

    page.get_by_label("Amount to add (won)").fill("200000")
    page.keyboard.press("Enter")  # keyboard submits the charge form
    expect(page.locator("#balance")).to_have_text("₩200,000")
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.get_by_role("heading", name="Your tickets are booked")).to_be_visible()
    expect(page.locator("#receipt")).to_contain_text("Seat B-1-2 · ₩80,000")
    page.screenshot(path=tmp_path / "4-receipt.png", full_page=True)
    page.context.close()


def test_two_people_race_for_one_seat(browser: Any, server: str, tmp_path: Path) -> None:
    alice, bob = open_page(browser, server), open_page(browser, server)
    for page in (alice, bob):
        sign_in_and_join(page)
    for page in (alice, bob):
        wait_for_turn(page)
    expect(seat(bob, 33)).to_be_visible()  # bob's map shows it free
    seat(alice, 33).click()
    expect(alice.locator("#hold-list")).to_contain_text("Seat B-3-3")
    seat(bob, 33).click()
    expect(bob.get_by_role("alert")).to_contain_text("someone just took that seat")
    expect(seat(bob, 33, "held by someone else")).to_have_attribute("aria-disabled", "true")
    bob.screenshot(path=tmp_path / "race-loser.png", full_page=True)
    for page in (alice, bob):
        page.context.close()


def test_reload_keeps_the_place(
    browser: Any, server: str, admit_batch: Any, tmp_path: Path
) -> None:
    admit_batch(0)  # nobody is admitted: the place must survive as WAITING
    page = open_page(browser, server)
    sign_in_and_join(page)
    expect(page.get_by_role("heading", name=re.compile("You are in the queue"))).to_be_visible()
    rank = page.locator("#q-rank").inner_text()
    token = page.evaluate("localStorage.getItem('queueToken')")
    page.screenshot(path=tmp_path / "queue.png", full_page=True)
    page.reload()
    expect(page.get_by_role("heading", name=re.compile("You are in the queue"))).to_be_visible()
    expect(page.locator("#q-rank")).to_have_text(rank)
    assert page.evaluate("localStorage.getItem('queueToken')") == token
    page.get_by_role("button", name="Leave the queue").click()
    page.get_by_role("button", name="Yes, leave the queue").click()
    expect(page.get_by_role("status")).to_contain_text("You left the queue")
    page.context.close()


def test_phone_width_and_keyboard(browser: Any, server: str, tmp_path: Path) -> None:
    page = open_page(browser, server, width=375)
    expect(page.get_by_role("button", name="Continue as a guest")).to_be_visible()  # scripts in
    page.keyboard.press("Tab")  # brand link
    page.keyboard.press("Tab")  # the language switch
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Continue as a guest")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Concerts")).to_be_visible()
    page.get_by_role("button", name="Join the queue").first.focus()
    page.keyboard.press("Enter")
    wait_for_turn(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=tmp_path / "phone-booking.png", full_page=True)
    page.context.close()


def test_the_page_and_the_console_name_an_icon_that_is_served(browser: Any, server: str) -> None:
    page = browser.new_context().new_page()
    for path in ("/", "/admin"):
        page.goto(server + path)
        href = page.locator("link[rel=icon]").get_attribute("href")
        assert href, path
        icon = page.request.get(server + href)
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert page.request.get(server + "/favicon.ico").status == 200  # for those who ask anyway
    page.context.close()


def test_a_slow_line_shows_what_is_loading(browser: Any, server: str) -> None:
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server + "/")
    cdp = page.context.new_cdp_session(page)
    slow = {"offline": False, "latency": 2000, "downloadThroughput": -1, "uploadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", slow)
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.locator("#concert-list")).to_contain_text("Loading the concerts…")
    join = page.get_by_role("button", name="Join the queue").first
    expect(join).to_be_visible(timeout=15_000)
    join.click()
    expect(page.get_by_role("heading", name=re.compile("Choose your seats"))).to_be_visible(
        timeout=20_000
    )
    expect(page.locator("#date-list")).to_contain_text("Loading the dates and seats…")
    expect(page.locator("#seat-map .seat").first).to_be_visible(timeout=20_000)
    page.context.close()
