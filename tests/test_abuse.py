"""Bad input and abuse: arbitrary bodies, headers and path parameters never
cause a 5xx, and a rejected request changes nothing."""

from __future__ import annotations

import asyncio
import string
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontrow.store import Store
from tests.conftest import active_token, app_client, bearer, user_headers
from tests.wallet.test_payments_http import sold_count
from tests.wallet.test_wallet_http import ledger_sum

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"amount": json_values}),
    st.fixed_dictionaries({"hold_ids": json_values}),
)
header_text = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=80)


@FAST
@given(body=bodies, key=st.none() | header_text)
async def test_charge_bodies(
    client: httpx.AsyncClient, store: Store, body: Any, key: str | None
) -> None:
    before = await ledger_sum(store, "fuzz")
    headers = user_headers(store, "fuzz") | ({"Idempotency-Key": key} if key is not None else {})
    response = await client.post("/wallet/charge", headers=headers, json=body)
    assert response.status_code < 500, response.text
    after = await ledger_sum(store, "fuzz")
    if response.status_code == 200:
        assert after == response.json()["balance"]
    else:
        assert response.status_code in (400, 409, 422)
        assert after == before


@FAST
@given(body=bodies)
async def test_payment_bodies(client: httpx.AsyncClient, store: Store, body: Any) -> None:
    token = await active_token(store, "payer")
    response = await client.post("/payments", headers=bearer(token), json=body)
    assert response.status_code in (400, 403, 409, 422), response.text
    assert await sold_count(store) == 0 and await ledger_sum(store, "payer") == 0


@FAST
@given(body=json_values)
async def test_admin_bodies(client: httpx.AsyncClient, store: Store, body: Any) -> None:
    admin = bearer("admin-secret-0123456789abcdef-01234")
    before = (await client.get("/admin/concerts/1/queue", headers=admin)).json()
    response = await client.patch("/admin/concerts/1/queue", headers=admin, json=body)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code != 200:
        assert (await client.get("/admin/concerts/1/queue", headers=admin)).json() == before


# Short text of any kind, and digit runs past Python's int-string limit (4,300).
segment = st.one_of(
    st.text(min_size=1, max_size=30),
    st.text(alphabet=string.digits, min_size=1, max_size=6000),
    st.text(min_size=1000, max_size=5000),
).map(lambda s: quote(s, safe=""))


@FAST
@given(concert=segment, date=segment, seat=segment, hold=segment, receipt=segment)
async def test_path_parameters(
    client: httpx.AsyncClient,
    store: Store,
    concert: str,
    date: str,
    seat: str,
    hold: str,
    receipt: str,
) -> None:
    token = await active_token(store, "walker")
    user = user_headers(store, "walker")
    calls = [
        ("POST", f"/concerts/{concert}/queue", user),
        ("GET", f"/concerts/{concert}/dates", bearer(token)),
        ("GET", f"/concerts/1/dates/{date}/seats", bearer(token)),
        ("POST", f"/concerts/1/dates/{date}/seats/{seat}/hold", bearer(token)),
        ("DELETE", f"/holds/{hold}", bearer(token)),
        ("GET", f"/receipts/{receipt}", user),
        ("GET", f"/admin/concerts/{concert}/queue", bearer("admin-secret-0123456789abcdef-01234")),
    ]
    for method, path, headers in calls:
        response = await client.request(method, path, headers=headers)
        assert response.status_code < 500, (method, path[:200], response.text)
        assert response.headers["content-type"] in (
            "application/json",
            "application/problem+json",
        )


async def test_huge_integer_path_parameters_are_404(client: httpx.AsyncClient) -> None:
    huge = "9" * 4301
    for method, path in (
        ("POST", f"/concerts/{huge}/queue"),
        ("GET", f"/concerts/{huge}/dates"),
        ("POST", f"/concerts/1/dates/2026-12-01/seats/{huge}/hold"),
        ("GET", f"/admin/concerts/{huge}/queue"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 404, (method, response.text)


async def test_no_redirect_echoes_the_host_header(client: httpx.AsyncClient) -> None:
    response = await client.get("/concerts/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers


@FAST
@given(authorization=header_text)
async def test_authorization_headers(client: httpx.AsyncClient, authorization: str) -> None:
    for method, path in (
        ("GET", "/queue/token"),
        ("GET", "/wallet"),
        ("POST", "/concerts/1/queue"),
        ("GET", "/concerts/1/dates"),
        ("POST", "/payments"),
    ):
        response = await client.request(method, path, headers={"Authorization": authorization})
        assert response.status_code == 401, (method, path, authorization)


async def test_oversized_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, store: Store
) -> None:
    huge = b'{"amount": 5, "pad": "' + b"x" * 100_000 + b'"}'
    headers = user_headers(store, "big") | {"content-type": "application/json"}
    response = await client.post("/wallet/charge", headers=headers, content=huge)
    assert response.status_code == 413
    assert await ledger_sum(store, "big") == 0


async def test_a_slow_body_is_cut_off(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from frontrow import http

    monkeypatch.setattr(http, "BODY_TIMEOUT_S", 0.3)

    async def trickle() -> Any:
        yield b'{"amount":'
        await asyncio.sleep(5)
        yield b" 5}"

    async with app_client(store) as client:
        headers = user_headers(store, "slow") | {"content-type": "application/json"}
        response = await asyncio.wait_for(
            client.post("/wallet/charge", headers=headers, content=trickle()), timeout=3
        )
    assert response.status_code == 400 and "did not arrive" in response.json()["detail"]
    assert await ledger_sum(store, "slow") == 0
