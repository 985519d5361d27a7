"""Each test that runs a real `frontrow serve` runs once per HTTP server."""

from __future__ import annotations

import pytest

from tests.e2e.server import SERVERS


@pytest.fixture(params=SERVERS)
def http_server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=SERVERS)
def module_server(request: pytest.FixtureRequest) -> str:
    return str(request.param)
