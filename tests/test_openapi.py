"""/openapi.json documents every route of the app, and nothing else."""

from __future__ import annotations

import re

import httpx
from starlette.routing import Mount, Route

from frontrow.app import create_app
from frontrow.errors import ERRORS_BY_CODE
from frontrow.openapi import document


def app_operations() -> set[tuple[str, str]]:
    ops = set()
    for route in create_app().routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                ops.add((method.lower(), path))
    return ops


def test_every_route_is_documented_and_nothing_more() -> None:
    documented = {(m, p) for p, item in document()["paths"].items() for m in item}
    assert app_operations() == documented


def test_every_error_code_is_named_in_the_document() -> None:
    text = str(document())
    for code in ERRORS_BY_CODE:
        assert code in text, code


async def test_document_is_served(client: httpx.AsyncClient) -> None:
    body = (await client.get("/openapi.json")).json()
    assert body["openapi"] == "3.1.0" and "/payments" in body["paths"]


def test_the_code_raises_only_listed_codes() -> None:
    from pathlib import Path

    import frontrow

    root = Path(frontrow.__file__).parent
    used = set()
    for source in root.rglob("*.py"):
        text = source.read_text()
        used |= set(re.findall(r'(?:conflict|invalid|Problem\(\d+,)\s*\(?\s*"([A-Z_]+)"', text))
        used |= set(re.findall(r'code="([A-Z_]+)"', text))
    assert used and used <= set(ERRORS_BY_CODE), used - set(ERRORS_BY_CODE)
