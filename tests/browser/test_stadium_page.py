"""The page at stadium size: sections first, then a section's rows, best available."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import catalog_server
from tests.browser.test_buyer_page import shot
from tests.browser.test_korean import korean_page
from tests.browser.test_waiting_room import open_page, wait_for_turn

STADIUM = Path(__file__).parents[2] / "examples" / "stadium.json"


@pytest.fixture(scope="module")
def stadium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose catalog is one 50,000-seat date of the example stadium."""
    venue = json.loads(STADIUM.read_text())
    venue["concerts"][0]["dates"] = venue["concerts"][0]["dates"][:1]
    yield from catalog_server(tmp_path_factory, venue, FRONTROW_ADMIT_INTERVAL_S="0.3")


def join(page: Any) -> None:
    page.get_by_role("button", name="Continue as a guest").click()
    page.get_by_role("button", name="Join the queue").click()
    expect(page.get_by_role("heading", name=re.compile("Choose your seats"))).to_be_visible()


@pytest.mark.parametrize("size", [(1200, 900), (390, 844)])
def test_pick_a_section_then_a_seat_then_best_available(
    browser: Any, stadium: str, size: tuple[int, int]
) -> None:
    page = open_page(browser, stadium, width=size[0], height=size[1])
    join(page)
    sections = page.locator("#section-list button")
    expect(sections).to_have_count(20)
    expect(sections.first).to_contain_text(re.compile(r"^F1 · 2,500 left · ₩220,000$"))
    expect(page.locator("#seat-map .seat")).to_have_count(0)  # no 50,000 buttons at once
    page.get_by_role("button", name=re.compile(r"^A · ")).click()
    expect(page.locator("#map-title")).to_contain_text("Section A")
    expect(page.locator("#seat-map .seat-row")).to_have_count(50)
    expect(page.locator("#seat-map .seat")).to_have_count(2_500)
    wait_for_turn(page)
    ready = page.evaluate("performance.getEntriesByName('map-ready').length")
    assert ready == 1  # the page marks when the section's seats are click-ready
    mine = f"A-{1 if size[0] > 800 else 2}-25"  # one seat a run: the server is shared
    page.locator(f'#seat-map [aria-label^="Seat {mine},"]').click()
    expect(page.locator("#hold-list")).to_contain_text(f"Seat {mine}")
    page.get_by_label("Seats together").select_option("3")
    page.get_by_role("button", name="Best available").click()
    cart = page.locator("#hold-list li")
    expect(cart).to_have_count(4)
    found = re.findall(r"Seat (A-\d+-\d+)", page.locator("#hold-list").inner_text())
    best = [label for label in found if label != mine]  # in section A, the open one
    rows = {label.split("-")[1] for label in best}
    numbers = sorted(int(label.split("-")[2]) for label in best)
    assert len(rows) == 1 and numbers == list(range(numbers[0], numbers[0] + 3))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, f"stadium-{size[0]}")
    page.context.close()


@pytest.mark.parametrize("size", [(1200, 900), (390, 844)])
def test_a_long_row_keeps_its_number_and_the_stage_and_best_seats_stay_in_sight(
    browser: Any, stadium: str, size: tuple[int, int]
) -> None:
    phone = size[0] < 800
    page = open_page(browser, stadium, width=size[0], height=size[1])
    join(page)
    page.get_by_role("button", name=re.compile(r"^F1 · ")).click()
    expect(page.locator("#seat-map .seat-row")).to_have_count(25)  # 100 seats a row
    wait_for_turn(page)
    # where the stage is, above row 1
    expect(page.locator("#seat-map .stage")).to_have_text("Stage")
    # on a phone the open section's map comes first, not twenty buttons
    if phone:
        expect(page.locator("#section-list")).to_be_hidden()
    else:
        expect(page.locator("#section-list")).to_be_visible()
    expect(page.get_by_role("button", name="All sections")).to_be_visible()
    # panned to the row's far end, the row's number is still at the map's left edge
    page.locator("#seat-map").evaluate("m => { m.scrollLeft = m.scrollWidth; }")
    label = page.locator("#seat-map .seat-row").first.locator(".row-label")
    edge = page.evaluate(
        "() => [document.querySelector('#seat-map').getBoundingClientRect().left,"
        " document.querySelector('#seat-map .row-label').getBoundingClientRect().left]"
    )
    assert abs(edge[0] - edge[1]) < 2, edge
    expect(label).to_be_in_viewport()
    # best available finds a block in the middle of a row: it is brought into sight
    page.locator("#seat-map").evaluate("m => { m.scrollLeft = m.scrollWidth; }")
    page.get_by_label("Seats together").select_option("2")
    page.get_by_role("button", name="Best available").click()
    expect(page.locator("#hold-list li")).to_have_count(2)
    expect(page.locator("#seat-map .seat.mine").first).to_be_in_viewport()
    shot(page, f"stadium-row-{size[0]}")
    page.context.close()


@pytest.mark.parametrize("size", [(1200, 900), (390, 844)])
def test_the_sections_are_a_picture_of_the_venue(
    browser: Any, stadium: str, size: tuple[int, int]
) -> None:
    """The stage at the top, the sections where the catalog places them,
    coloured by price and by what is left; the list stays beside it."""
    page = open_page(browser, stadium, width=size[0], height=size[1])
    # one section sold out, as the server would say it
    page.route(
        "**/sections",
        lambda route: route.fulfill(
            response=(answer := route.fetch()),
            json={
                **answer.json(),
                "sections": [
                    {**s, "available_seats": 0} if s["name"] == "K" else s
                    for s in answer.json()["sections"]
                ],
            },
        ),
    )
    join(page)
    plan = page.locator("#venue-plan")
    expect(plan.locator(".plan-section")).to_have_count(20)
    expect(page.locator("#section-list button")).to_have_count(20)  # for every reader

    def box(css: str) -> dict[str, float]:
        found = plan.locator(css).bounding_box()
        assert found is not None
        return found

    stage, f1, f3, e, a, p = (
        box(css)
        for css in (
            ".plan-stage",
            '[data-section="F1"]',
            '[data-section="F3"]',
            '[data-section="E"]',
            '[data-section="A"]',
            '[data-section="P"]',
        )
    )
    assert stage["y"] + stage["height"] <= f1["y"]  # the floor faces the stage
    assert f1["y"] + f1["height"] <= f3["y"] and f3["y"] + f3["height"] <= e["y"]
    assert a["x"] + a["width"] <= f1["x"] and f1["x"] + f1["width"] <= p["x"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    def colour(name: str) -> str:
        found = plan.locator(f'[data-section="{name}"]')
        return str(found.evaluate("e => getComputedStyle(e).backgroundColor"))

    assert colour("F1") == colour("F4") != colour("A") == colour("P")  # ₩220,000 and from ₩121,000
    assert colour("K") not in (colour("F1"), colour("A"))  # sold out
    expect(plan.locator('[data-section="K"]')).to_contain_text("sold out")
    expect(plan.locator(".plan-legend")).to_contain_text("from ₩220,000")
    plan.locator('[data-section="F2"]').click()
    expect(page.locator("#map-title")).to_contain_text("Section F2")
    expect(page.locator("#seat-map .seat-row")).to_have_count(25)
    if size[0] < 800:
        expect(plan).to_be_hidden()  # the open section's map comes first on a phone
    else:
        expect(plan.locator('[data-section="F2"]')).to_have_attribute("aria-pressed", "true")
    shot(page, f"stadium-plan-{size[0]}")
    page.context.close()


def test_a_venue_without_a_plan_is_a_list_of_sections(browser: Any, stadium: str) -> None:
    page = open_page(browser, stadium, width=1200, height=900)
    page.route(
        "**/sections",
        lambda route: route.fulfill(
            response=(answer := route.fetch()),
            json={
                **answer.json(),
                "sections": [{**s, "at": None} for s in answer.json()["sections"]],
            },
        ),
    )
    join(page)
    expect(page.locator("#section-list button")).to_have_count(20)
    expect(page.locator("#venue-plan")).to_be_hidden()
    page.context.close()


def test_the_venue_s_picture_in_korean(browser: Any, stadium: str) -> None:
    page = korean_page(browser, stadium)
    page.get_by_role("button", name="게스트로 계속하기").click()
    page.get_by_role("button", name="대기열 들어가기").first.click()
    plan = page.locator("#venue-plan")
    expect(plan.locator(".plan-stage")).to_have_text("무대")
    expect(plan.locator(".plan-legend")).to_contain_text("220,000원부터")
    expect(plan.locator('[data-section="A"]')).to_have_attribute("title", re.compile("석 남음"))
    page.context.close()


def test_the_picture_s_last_colour_is_from_the_cheapest_price(browser: Any, stadium: str) -> None:
    """More prices than colours: the last colour takes every cheaper price."""
    page = open_page(browser, stadium, width=1200, height=900)
    page.route(
        "**/sections",
        lambda route: route.fulfill(
            response=(answer := route.fetch()),
            json={
                **answer.json(),
                "sections": [
                    {**s, "min_price": 100_000 + 1_000 * i}
                    for i, s in enumerate(answer.json()["sections"])
                ],
            },
        ),
    )
    join(page)
    legend = page.locator("#venue-plan .plan-legend")
    expect(legend.locator(".swatch")).to_have_count(4)
    expect(legend).to_have_text(re.compile(r"from ₩119,000 .* from ₩100,000\s*$"))
    page.context.close()
