"""The on-sale moment in Chromium: the pre-queue screen with its countdown and
the lottery link, the proof of work solved in a Web Worker, the drawn rank at
the opening. A server of its own: its sale would close the others' queue."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN
from tests.browser.test_waiting_room import open_page, wait_for_turn

SHOTS = Path("/tmp/frontrow-shots")


def test_prequeue_then_the_draw_in_chromium(browser: Any, sale_server: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    admin = f"{sale_server}/admin/concerts/1/queue"
    opens = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=12)
    body = {"prequeue_from": "2020-01-01T00:00:00Z", "opens_at": opens.isoformat(), "pow_bits": 12}
    assert httpx.patch(admin, headers=ADMIN, json=body).status_code == 200

    page = open_page(browser, sale_server)
    page.get_by_role("button", name="Continue as a guest").click()
    expect(page.get_by_text(re.compile("random order drawn at the opening"))).to_be_visible()
    page.get_by_role("button", name="Join the pre-queue").click()
    # the proof of work runs in a worker; then the pre-queue screen
    expect(page.get_by_role("heading", name=re.compile("pre-queue"))).to_be_visible()
    expect(page.locator("#q-countdown")).to_have_text(re.compile(r"\d+ s"))
    link = page.get_by_role("link", name="anyone can check it")
    expect(link).to_have_attribute("href", "/static/lottery.html?concert=1")
    expect(page.locator("#q-facts")).to_be_hidden()
    page.screenshot(path=SHOTS / "prequeue-desktop.png", full_page=True)
    lottery = httpx.get(f"{sale_server}/concerts/1/queue/lottery").json()
    assert lottery["seed"] is None and len(lottery["commitment"]) == 64

    # the opening: the page comes back by itself and shows the rank it drew
    expect(page.get_by_text("The draw is done: your place in line is below.")).to_be_visible(
        timeout=30_000
    )
    expect(page.locator("#q-rank")).to_have_text("1")
    page.screenshot(path=SHOTS / "prequeue-drawn.png", full_page=True)
    lottery = httpx.get(f"{sale_server}/concerts/1/queue/lottery").json()
    assert lottery["entries"] == 1 and lottery["seed"] is not None
    # "anyone can check it": a page that does the check, with the buyer's own key
    check = page.context.new_page()
    check.goto(sale_server + "/static/lottery.html?concert=1")
    expect(check.locator("#draw-verdict")).to_contain_text("the seed is the one fixed")
    expect(check.locator("#draw-mine")).to_contain_text("number 1 of 1")
    expect(check.locator("#draw-facts")).to_contain_text(lottery["seed"])
    check.close()
    assert httpx.patch(admin, headers=ADMIN, json={"admit_batch": 5}).status_code == 200
    wait_for_turn(page)
    page.context.close()


def test_proof_of_work_in_a_worker_matches_the_server(browser: Any, sale_server: str) -> None:
    """The worker's SHA-256 agrees with the server's check (a wrong hash would
    be refused with 403); its answer for a known challenge is the first nonce."""
    page = open_page(browser, sale_server)
    found = page.evaluate(
        """() => new Promise((resolve) => {
            const worker = new Worker("/static/pow.js");
            worker.onmessage = ({ data }) => { if (data.nonce !== undefined) resolve(data); };
            worker.postMessage({ challenge: "AAAAAAAAAAAAAAAAAAAAAA", bits: 16 });
        })"""
    )
    from frontrow.sale import proof_ok

    nonce = int(found["nonce"])
    assert proof_ok("AAAAAAAAAAAAAAAAAAAAAA", str(nonce), 16)
    assert not any(proof_ok("AAAAAAAAAAAAAAAAAAAAAA", str(n), 16) for n in range(nonce))
    page.context.close()
