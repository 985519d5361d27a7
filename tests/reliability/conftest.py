"""The reliability tests' own redis-server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_REAL
from tests.reliability.helpers import OwnRedis


@pytest.fixture
def own(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of the test's own, without persistence, started:
    killed and started again, it comes back empty."""
    if not shutil.which("redis-server"):
        if REQUIRE_REAL:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
