"""The operations console in Chromium: sign-in, charts that move while
people are admitted, a change of k that takes effect and is audited."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN, catalog_server
from tests.e2e.server import serve

TOKEN = ADMIN["Authorization"].removeprefix("Bearer ")
SHOTS = Path("/tmp/frontrow-shots")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # its own service: the console's history and changes are this module's alone
    db = tmp_path_factory.mktemp("console") / "frontrow.db"
    env = {
        "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "FRONTROW_ADMIT_INTERVAL_S": "0.5",
        "FRONTROW_ADMIT_BATCH": "0",  # nobody is let in until a test says so
        "FRONTROW_ADMIN_TOKEN": TOKEN,
    }
    with serve(env) as url:
        yield url


def console(
    browser: Any, server: str, width: int = 1440, height: int = 900, **context: Any
) -> Page:
    page = browser.new_context(viewport={"width": width, "height": height}, **context).new_page()
    page.goto(server + "/admin")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("Winter Night"))).to_be_visible()
    return page


def join(server: str, people: int) -> None:
    for _ in range(people):
        user = httpx.post(server + "/auth/demo").json()["access_token"]
        headers = {"Authorization": f"Bearer {user}"}
        assert httpx.post(server + "/concerts/1/queue", headers=headers).status_code == 201


def test_a_wrong_token_is_refused(browser: Any, server: str) -> None:
    page = browser.new_context().new_page()
    page.goto(server + "/admin")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    expect(page.get_by_role("heading", name="Operations console")).to_be_visible()
    page.context.close()


def test_the_charts_move_while_people_are_admitted(browser: Any, server: str) -> None:
    page = console(browser, server)
    join(server, 12)  # k is 0: all of them wait, none is let straight in
    waiting = page.locator("#chart-waiting .now")
    expect(waiting).to_have_text("12")
    line = page.locator("#chart-active path.series")
    drawn = line.get_attribute("d")
    assert httpx.patch(
        f"{server}/admin/concerts/1/queue", headers=ADMIN, json={"admit_batch": 4}
    ).is_success
    expect(page.locator("#chart-active .now")).to_have_text(re.compile(r"^(?:[4-9]|1[0-2])$"))
    expect(waiting).to_have_text("0", timeout=10_000)
    expect(page.locator("#chart-admitted .now")).not_to_have_text(re.compile(r"^(\u2013|0)$"))
    assert line.get_attribute("d") != drawn
    # nobody's page polled since: all twelve were let in and none is back to hear it
    expect(page.locator("#t-not-back")).to_have_text("12")
    expect(page.locator("#chart-notback .now")).to_have_text("12")
    # this concert's refused requests show as its error answers
    for _ in range(3):
        bad = httpx.get(server + "/concerts/1/dates", headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401
    expect(page.locator("#chart-errors .now")).to_have_text(
        re.compile(r"^4xx [1-9].* 5xx 0$"), timeout=10_000
    )
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / "console-desktop.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=SHOTS / "console-laptop.png", full_page=True)
    page.context.close()


def test_a_change_of_k_takes_effect_and_is_audited(browser: Any, server: str) -> None:
    page = console(browser, server)
    page.get_by_label("k, admitted per interval").fill("7")
    page.get_by_label(re.compile("^Reason")).fill("slower: the payment provider is busy")
    page.get_by_role("button", name="Apply changes").click()
    expect(page.locator("#t-kn")).to_have_text(re.compile(r"^7 / "))
    expect(page.locator("#audit tbody tr").first).to_contain_text("admit_batch")
    expect(page.locator("#audit tbody tr").first).to_contain_text("→ 7")
    # who (the token's name) and why, in the row
    expect(page.locator("#audit tbody tr").first).to_contain_text("admin (")
    expect(page.locator("#audit tbody tr").first).to_contain_text("the payment provider is busy")
    expect(page.get_by_label(re.compile("^Reason"))).to_have_value("")
    admin = httpx.get(f"{server}/admin/concerts/1/queue", headers=ADMIN).json()
    assert admin["admit_batch"] == 7

    # stopping the sale asks first; Cancel changes nothing
    page.get_by_role("button", name="Close the queue").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("nobody new can enter")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#t-open")).to_have_text(re.compile("^open"))
    page.get_by_role("button", name="Close the queue").click()
    page.get_by_role("dialog").get_by_role("button", name="Yes").click()
    expect(page.locator("#t-open")).to_have_text("closed")
    expect(page.locator("#audit tbody tr").first).to_contain_text("true → false")
    assert httpx.get(f"{server}/admin/concerts/1/queue", headers=ADMIN).json()["open"] is False
    page.get_by_role("button", name="Open the queue").click()  # opening asks nothing
    expect(page.locator("#t-open")).to_have_text(re.compile("^open"))
    page.context.close()


def test_every_time_on_the_console_is_the_venue_s(browser: Any, server: str) -> None:
    """The audit, the charts' axis and "updated" follow the venue's clock,
    as the sale's times do, on an operator's machine set to another zone."""
    page = console(browser, server, timezone_id="America/Los_Angeles")
    page.get_by_label("k, admitted per interval").fill("3")
    page.get_by_role("button", name="Apply changes").click()
    expect(page.locator("#audit tbody tr").first).to_contain_text("→ 3")
    audit = httpx.get(f"{server}/admin/concerts/1/audit", headers=ADMIN).json()["changes"][0]
    at = dt.datetime.fromisoformat(audit["at"].replace("Z", "+00:00"))
    seoul = at.astimezone(dt.timezone(dt.timedelta(hours=9)))  # the demo venue's zone
    row = page.locator("#audit tbody tr").first
    expect(row).to_contain_text(seoul.strftime("%Y-%m-%d %H:%M:%S"))
    expect(page.locator("#audit thead")).to_contain_text("When (Asia/Seoul)")
    expect(page.locator("#updated")).to_contain_text("Asia/Seoul")
    ticks = page.locator("#chart-waiting .tick").all_text_contents()
    now_seoul = dt.datetime.now(dt.timezone(dt.timedelta(hours=9)))
    hours = {(now_seoul - dt.timedelta(minutes=m)).strftime("%H:") for m in (5, 10)}
    assert any(t[:3] in hours for t in ticks if re.fullmatch(r"\d\d:\d\d:\d\d", t)), ticks
    page.context.close()


def test_moving_the_opening_asks_first_in_the_venue_time(browser: Any, server: str) -> None:
    """A sale time is typed in the venue's zone, confirmed with what it does
    to people, applied as UTC; a bad value's error sits next to Apply."""
    page = console(browser, server)
    admin = f"{server}/admin/concerts/1/queue"
    field = page.get_by_label(re.compile("^Opens at"))
    expect(page.locator("#controls")).to_contain_text("Opens at (Asia/Seoul")
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date()
    field.fill(f"{day} 19:00")
    apply = page.get_by_role("button", name="Apply changes")
    apply.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"move the opening to {day} 19:00 Asia/Seoul")
    expect(dialog).to_contain_text(re.compile(r"now \d+ waiting and \d+ active"))
    dialog.get_by_role("button", name="Cancel").click()
    assert httpx.get(admin, headers=ADMIN).json()["opens_at"] is None  # nothing changed
    apply.click()
    page.get_by_role("dialog").get_by_role("button", name="Yes").click()
    expect(page.locator("#controls-msg")).to_contain_text("Changed: opens_at")
    assert httpx.get(admin, headers=ADMIN).json()["opens_at"] == f"{day}T10:00:00Z"  # 19:00 KST
    expect(field).to_have_value(f"{day} 19:00")

    field.fill("tomorrow at seven")
    apply.click()
    page.get_by_role("dialog").get_by_role("button", name="Yes").click()
    refused = page.locator("#controls-msg")
    expect(refused).to_contain_text("Not changed")
    assert refused.get_attribute("role") == "alert"
    assert httpx.get(admin, headers=ADMIN).json()["opens_at"] == f"{day}T10:00:00Z"
    assert httpx.patch(admin, headers=ADMIN, json={"opens_at": None}).status_code == 200
    page.context.close()


def test_the_sale_tile_follows_a_scheduled_sale(browser: Any, server: str) -> None:
    """scheduled, pre-queue (with the count), open, paused: the first tile says
    which, with the times in the venue's zone."""
    page = console(browser, server)
    tile, note = page.locator("#t-open"), page.locator("#t-sale-note")
    now = dt.datetime.now(dt.UTC)
    sale = {
        "prequeue_from": (now + dt.timedelta(seconds=4)).isoformat(),
        "opens_at": (now + dt.timedelta(seconds=10)).isoformat(),
    }
    admin = f"{server}/admin/concerts/1/queue"
    assert httpx.patch(admin, headers=ADMIN, json=sale).status_code == 200
    expect(tile).to_have_text(re.compile(r"^scheduled · opens in \d+ s"))
    expect(note).to_contain_text("(Asia/Seoul)")
    expect(tile).to_have_text(re.compile(r"^pre-queue · 0 in · opens in"), timeout=8_000)
    user = httpx.post(f"{server}/auth/demo").json()["access_token"]
    entered = httpx.post(f"{server}/concerts/1/queue", headers={"Authorization": f"Bearer {user}"})
    assert entered.status_code == 201
    expect(tile).to_have_text(re.compile(r"^pre-queue · 1 in"))
    expect(tile).to_have_text("open · fifo", timeout=15_000)
    expect(note).to_contain_text("opened ")
    assert httpx.patch(admin, headers=ADMIN, json={"admit_batch": 0}).status_code == 200
    expect(tile).to_have_text("paused · k = 0")
    assert httpx.patch(admin, headers=ADMIN, json={"admit_batch": 10}).status_code == 200
    expect(tile).to_have_text("open · fifo")
    page.context.close()


def test_on_a_phone_the_header_leaves_room_for_the_sale(browser: Any, server: str) -> None:
    page = console(browser, server, width=390, height=844)
    header = page.locator("header.bar").bounding_box()
    assert header is not None and header["height"] <= 100, header  # was 370 px
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.locator("#t-open")).to_be_in_viewport()
    page.context.close()


def test_charts_have_a_time_axis_values_on_hover_change_marks_and_thresholds(
    browser: Any, server: str
) -> None:
    page = console(browser, server)
    clock = re.compile(r"^\d\d:\d\d:\d\d$")
    ticks = page.locator("#chart-waiting text.tick.middle")
    expect(ticks).to_have_count(2)
    assert all(clock.match(t) for t in ticks.all_text_contents())
    threshold = page.locator("#chart-latency .threshold title")
    expect(threshold).to_have_text(re.compile("FrontrowPollSlow"))
    admin = f"{server}/admin/concerts/1/queue"
    body = {"admit_batch": 11, "reason": "marking the charts"}
    assert httpx.patch(admin, headers=ADMIN, json=body).status_code == 200
    mark = page.locator("#chart-waiting .change title").first
    expect(mark).to_have_text(re.compile(r"admit_batch: \d+ → 11 \(admin\)"), timeout=15_000)
    chart = page.locator("#chart-waiting svg")
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 8, box["y"] + box["height"] / 2)
    expect(page.locator("#chart-waiting .hover")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d · \d+"))
    assert httpx.patch(admin, headers=ADMIN, json={"admit_batch": 10}).status_code == 200
    page.context.close()


@pytest.fixture(scope="module")
def last_seats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A concert of two seats on a service with no admitter: the opening is
    seen as it is before an admitter records it, and one buyer sells out."""
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date().isoformat()
    concert = {
        "id": 1,
        "title": "Winter Night: the last two seats",
        "venue": "Seoul Arts Center",
        "on_sale": True,
        "timezone": "Asia/Seoul",
        "dates": [
            {
                "date": day,
                "starts_at": f"{day}T19:00:00+09:00",
                "seats": [{"from": 1, "to": 2, "price": 50000}],
            }
        ],
    }
    yield from catalog_server(
        tmp_path_factory,
        {"concerts": [concert]},
        FRONTROW_ADMIN_TOKEN=TOKEN,
        FRONTROW_SCHEDULERS="0",
    )


def test_the_sale_tile_follows_a_whole_sale_to_sold_out(browser: Any, last_seats: str) -> None:
    """scheduled, pre-queue, opening (past its time, the draw not made: no
    admitter has ticked), open (the first entry records the opening), sold out."""
    server = last_seats
    page = console(browser, server)
    tile, note = page.locator("#t-open"), page.locator("#t-sale-note")
    now = dt.datetime.now(dt.UTC)
    sale = {
        "prequeue_from": (now + dt.timedelta(seconds=3)).isoformat(),
        "opens_at": (now + dt.timedelta(seconds=6)).isoformat(),
    }
    admin = f"{server}/admin/concerts/1/queue"
    assert httpx.patch(admin, headers=ADMIN, json=sale).status_code == 200
    expect(tile).to_have_text(re.compile(r"^scheduled · opens in \d+ s"))
    expect(tile).to_have_text(re.compile(r"^pre-queue · 0 in · opens in"), timeout=8_000)
    expect(tile).to_have_text("opening · drawing places", timeout=10_000)
    expect(note).to_contain_text("opened ")
    user = {"Authorization": f"Bearer {httpx.post(f'{server}/auth/demo').json()['access_token']}"}
    entered = httpx.post(f"{server}/concerts/1/queue", headers=user)
    assert entered.status_code == 201, entered.text
    assert entered.json()["status"] == "ACTIVE"  # nobody waits: fifo lets the first in at once
    expect(tile).to_have_text("open · fifo")
    token = {"Authorization": f"Bearer {entered.json()['token']}"}
    day = httpx.get(f"{server}/concerts/1/dates", headers=token).json()["dates"][0]["date"]
    held = [
        httpx.post(f"{server}/concerts/1/dates/{day}/seats/{n}/hold", headers=token).json()
        for n in (1, 2)
    ]
    charged = httpx.post(f"{server}/wallet/charge", headers=user, json={"amount": 100000})
    assert charged.status_code == 200, charged.text
    paid = httpx.post(
        f"{server}/payments", headers=token, json={"hold_ids": [h["hold_id"] for h in held]}
    )
    assert paid.status_code == 201, paid.text
    expect(tile).to_have_text(re.compile("^sold out"))
    expect(note).to_contain_text("every date to come is sold")
    page.context.close()
