"""A real `frontrow serve` and headless Chromium (Debian's, through Playwright)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.server import serve

CHROMIUM = os.environ.get("FRONTROW_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("FRONTROW_TEST_REQUIRE_BROWSER") == "1"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ADMIN = {"Authorization": "Bearer browser-admin-0123456789abcdef-0123456"}


def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(reason)
    pytest.skip(reason)


def _module_server(tmp: pytest.TempPathFactory, **env: str) -> Iterator[str]:
    """An embedded `frontrow serve` of a test module's own."""
    db = tmp.mktemp("browser") / "frontrow.db"
    base = {
        "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "FRONTROW_ADMIT_INTERVAL_S": "0.3",
        "FRONTROW_ADMIN_TOKEN": ADMIN["Authorization"].split()[1],
    }
    with serve({**base, **env}) as url:
        yield url


def catalog_server(
    tmp: pytest.TempPathFactory, catalog: dict[str, Any], **env: str
) -> Iterator[str]:
    """An embedded `frontrow serve` whose catalog is `catalog` (imported before it starts)."""
    folder = tmp.mktemp("catalog")
    (folder / "catalog.json").write_text(json.dumps(catalog))
    env = {"FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'frontrow.db'}", **env}
    subprocess.run(
        [sys.executable, "-m", "frontrow", "catalog", "import", str(folder / "catalog.json")],
        env={**env, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        timeout=300,
    )
    with serve(env) as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _module_server(tmp_path_factory, FRONTROW_ADMIT_BATCH="10")


@pytest.fixture(scope="module")
def sale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose sale a module may schedule: nobody is let in until a
    test says so (it would close the other modules' queue)."""
    yield from _module_server(
        tmp_path_factory, FRONTROW_ADMIT_BATCH="0", FRONTROW_PREQUEUE_SPREAD_S="1"
    )


@pytest.fixture
def admit_batch(server: str) -> Iterator[Any]:
    """Set the demo concert's admission batch live; restored after the test."""

    def set_batch(k: int) -> None:
        response = httpx.patch(
            f"{server}/admin/concerts/1/queue", headers=ADMIN, json={"admit_batch": k}
        )
        assert response.status_code == 200

    yield set_batch
    set_batch(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        _missing(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()
