"""A page never sleeps through what matters (#26.1-4): it asks at least once
a minute whatever it was told, at once on focus and reconnect; the concert
list opens a pre-queue to the second; the opening is shown as it happens;
sold out reads as sold out. A server of its own (nobody is admitted until a
test says so). Each test failed on the page before the fix."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import ADMIN
from tests.browser.test_waiting_room import TIMEOUT_MS

HOURS_3 = 3 * 3600 * 1000


def new_page(browser: Any, server: str, clock: bool = False, context: Any = None) -> Page:
    context = context or browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    if clock:
        page.clock.install()
    page.goto(server + "/")
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.get_by_role("heading", name="Concerts")).to_be_visible()
    return page


def rewritten(change: Callable[[dict[str, Any]], None]) -> Callable[[Route], None]:
    """A route handler that answers with the server's JSON, changed by `change`."""

    def handle(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        change(body)
        route.fulfill(response=answer, body=json.dumps(body))

    return handle


def polls_of(page: Page) -> list[float]:
    seen: list[float] = []
    page.on(
        "request",
        lambda r: (
            seen.append(time.monotonic())
            if r.method == "GET" and r.url.endswith("/queue/token")
            else None
        ),
    )
    return seen


def more(page: Page, polls: list[float], before: int) -> bool:
    """Whether the page polls again within 5 s (real time)."""
    deadline = time.monotonic() + 5
    while len(polls) == before and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return len(polls) > before


def test_a_page_told_to_wait_hours_asks_within_a_minute_and_on_focus(
    browser: Any, sale_server: str
) -> None:
    page = new_page(browser, sale_server, clock=True)
    polls = polls_of(page)

    def sleepy(body: dict[str, Any]) -> None:  # a server (or a proxy) asking for 3 hours
        body["poll_after_ms"] = HOURS_3

    page.route(re.compile(r"/queue/token$"), rewritten(sleepy))
    page.get_by_role("button", name="Join the queue").first.click()
    expect(page.get_by_role("heading", name=re.compile("in the queue"))).to_be_visible()
    with page.expect_response(re.compile(r"/queue/token$")):
        page.clock.fast_forward(2_000)  # the first poll, answered "in 3 hours"
    expect(page.locator("#q-status")).to_contain_text(re.compile(r"Next check in (1 min|\d+ s)"))
    before = len(polls)
    page.clock.fast_forward(61_000)
    assert more(page, polls, before), "the page slept past a minute"

    for event in ("focus", "online"):
        page.clock.fast_forward(3_000)  # past the 2 s a fresh answer counts for
        before = len(polls)
        page.evaluate(f"window.dispatchEvent(new Event('{event}'))")
        assert more(page, polls, before), f"no check on {event}"
    page.unroute_all(behavior="ignoreErrors")  # a poll in flight as the page closes
    page.context.close()


def test_the_list_opens_the_pre_queue_to_the_second_and_shows_the_draw(
    browser: Any, sale_server: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    body = {
        "prequeue_from": (now + dt.timedelta(seconds=4)).isoformat(),
        "opens_at": (now + dt.timedelta(seconds=12)).isoformat(),
    }
    admin = f"{sale_server}/admin/concerts/1/queue"
    assert httpx.patch(admin, headers=ADMIN, json=body).status_code == 200
    page = new_page(browser, sale_server)
    join = page.locator("#concert-list .card button").first
    expect(join).to_have_text(re.compile("^Pre-queue opens at"))
    expect(join).to_be_disabled()
    # no reload: the card turns at the pre-queue's start
    expect(join).to_have_text("Join the pre-queue", timeout=8_000)
    expect(join).to_be_enabled()
    join.click()
    expect(page.get_by_role("heading", name=re.compile("pre-queue"))).to_be_visible()
    expect(page.locator("#q-count-lead")).to_have_text("The sale opens in")

    held: list[Route] = []

    def hold_back(route: Route) -> None:
        held.append(route)

    page.route(re.compile(r"/queue/token$"), hold_back)  # the draw's answer is slow to come
    lead = page.locator("#q-count-lead")
    expect(lead).to_have_text("The sale is open: places are being drawn", timeout=15_000)
    first = page.locator("#q-countdown").inner_text()
    expect(page.locator("#q-countdown")).not_to_have_text(first, timeout=3_000)  # time runs
    expect(page.locator("#q-status")).to_contain_text("being drawn")
    for route in held:
        route.continue_()
    page.unroute(re.compile(r"/queue/token$"), hold_back)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    expect(page.get_by_text("The draw is done: your place in line is below.")).to_be_visible()
    expect(page.locator("#q-rank")).to_have_text("1")
    page.context.close()


def test_a_sold_out_concert_says_so_on_its_card(browser: Any, sale_server: str) -> None:
    page = browser.new_context().new_page()
    page.set_default_timeout(TIMEOUT_MS)

    def sold_out(body: dict[str, Any]) -> None:
        for concert in body["concerts"]:
            concert["sold_out"] = True

    page.route(re.compile(r"/concerts$"), rewritten(sold_out))
    page.goto(sale_server + "/")
    page.get_by_role("button", name="Continue as a guest").click()
    card = page.locator("#concert-list .card").first
    expect(card.locator(".badge")).to_have_text("Sold out")
    expect(card.locator(".badge")).to_be_visible()
    expect(card.get_by_role("button")).to_have_text("Sold out")
    expect(card.get_by_role("button")).to_be_disabled()
    expect(card).not_to_contain_text("Join the queue")
    page.context.close()
