"""The app's router tries only the routes a path could match: it must find
every route Starlette's full scan would, in the same order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.routing import Match

from frontrow.app import create_app
from frontrow.config import Settings
from frontrow.router import Router

PATHS = [
    "/",
    "/concerts",
    "/concerts/1",
    "/concerts/1/dates",
    "/concerts/1/dates/2026-12-24/seats",
    "/concerts/1/dates/2026-12-24/sections",
    "/concerts/1/dates/2026-12-24/seats/7/hold",
    "/concerts/1/dates/2026-12-24/best-available",
    "/concerts/x/dates",
    "/concerts/1/queue",
    "/concerts/1/queue/",
    "/concerts/1/queue/challenge",
    "/concerts/1/queue/lottery",
    "/concerts/1/queue/lottery/draw",
    "/queue/token",
    "/holds",
    "/holds/h_1",
    "/holds/h_1/x",
    "/wallet",
    "/wallet/charge",
    "/receipts",
    "/receipts/r_1",
    "/payments",
    "/admin",
    "/admin/concerts/1/queue",
    "/admin/concerts/1/live",
    "/admin/concerts/1/audit",
    "/static/app.js",
    "/static/i18n/ko.js",
    "/favicon.ico",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/nowhere",
    "//concerts",
    "",
]


def matching(routes: list[Any], method: str, path: str) -> list[tuple[Any, Match]]:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    found = [(route, route.matches(scope)[0]) for route in routes]
    return [(route, match) for route, match in found if match is not Match.NONE]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_the_router_finds_what_a_full_scan_finds(method: str) -> None:
    router = create_app(Settings()).router
    assert isinstance(router, Router)
    for path in PATHS:
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        assert matching(router.candidates(scope), method, path) == matching(
            router.routes, method, path
        ), path


async def test_wrong_method_is_405_and_unknown_path_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/concerts/1/queue")).status_code == 405
    assert (await client.get("/concerts/1/queue/")).status_code == 404
    assert (await client.get("/nowhere/at/all")).status_code == 404
    assert (await client.get("/static/icon.svg")).status_code == 200
