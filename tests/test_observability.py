"""Metrics from Redis at scrape time, per-route request metrics, structured logs."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import orjson
import pytest

from frontrow.logs import JsonFormatter
from frontrow.queue import core
from frontrow.store import Store
from tests.conftest import active_token, bearer, user_headers


def sample(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else r"(\{[^}]*\})?") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.M)
    assert match, f"{name}{{{labels}}} missing"
    return float(match.group(match.lastindex or 1))


async def test_metrics_report_queue_and_seats_from_redis(
    client: httpx.AsyncClient, store: Store
) -> None:
    for user in ("a", "b", "c"):
        await client.post("/concerts/1/queue", headers=user_headers(store, user))
    token = await active_token(store, "d")
    await client.post(f"/concerts/1/dates/{_first_date()}/seats/5/hold", headers=bearer(token))
    await client.post(
        f"/concerts/1/dates/{_first_date()}/seats/5/hold",
        headers=bearer(await active_token(store, "e")),
    )
    text = (await client.get("/metrics")).text
    assert sample(text, "frontrow_queue_waiting", 'concert="1"') == 0  # admitted by the helper
    assert sample(text, "frontrow_queue_active", 'concert="1"') >= 2
    assert sample(text, "frontrow_queue_admitted_total", 'concert="1"') >= 2
    assert sample(text, "frontrow_seats_held", 'concert="1"') == 1
    # a, b and c were let in by d's tick and never polled since; d and e did
    assert sample(text, "frontrow_queue_not_back", 'concert="1"') == 3
    assert 'frontrow_concert_p99_ms{concert="1",group="poll"}' in text
    assert sample(text, "frontrow_seats_sold", 'concert="1"') == 0
    assert sample(text, "frontrow_holds_total", 'concert="1",outcome="held"') >= 1
    assert sample(text, "frontrow_holds_total", 'concert="1",outcome="taken"') >= 1
    assert (
        sample(
            text,
            "frontrow_http_requests_total",
            'method="POST",route="/concerts/{concert_id}/queue",status="201"',
        )
        >= 3
    )
    assert 'route="/queue/token"' not in text or "eyJ" not in text  # never a raw token


async def test_live_tuning_shows_in_metrics_at_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    admin = bearer("admin-secret-0123456789abcdef-01234")
    await client.patch(
        "/admin/concerts/1/queue",
        headers=admin,
        json={"admit_batch": 7, "admit_interval_s": 0.5, "max_active": 40},
    )
    text = (await client.get("/metrics")).text
    assert sample(text, "frontrow_queue_admit_batch", 'concert="1"') == 7
    assert sample(text, "frontrow_queue_admit_interval_seconds", 'concert="1"') == 0.5
    assert sample(text, "frontrow_queue_max_active", 'concert="1"') == 40
    for i in range(10):
        await core.enter(store, f"w{i}", 1)
    await store.redis.delete(store.keys(1).tick)
    assert (await core.admit(store, 1, "t")).admitted == 7
    text = (await client.get("/metrics")).text
    assert sample(text, "frontrow_queue_waiting", 'concert="1"') == 3


def _first_date() -> str:
    from tests.booking.test_booking_http import first_date

    return first_date()


def test_json_log_line_has_the_request_fields() -> None:
    record = logging.LogRecord("frontrow.access", logging.INFO, __file__, 1, "request", None, None)
    record.__dict__.update(
        method="GET", route="/queue/token", status=200, duration_ms=1.2, concert=None
    )
    line = orjson.loads(JsonFormatter().format(record))
    assert line["msg"] == "request" and line["route"] == "/queue/token"
    assert line["status"] == 200 and line["level"] == "INFO" and line["ts"].endswith("Z")


@pytest.mark.parametrize("created", [1796687594.0, 1796687594.9999, 1796687595.0421])
def test_an_access_line_written_straight_is_the_line_logging_would_write(
    monkeypatch: pytest.MonkeyPatch, created: float
) -> None:
    import io

    from frontrow import logs, observe
    from frontrow.config import Settings

    root = logging.getLogger()
    kept = root.handlers[:], root.level
    monkeypatch.setattr(logs, "_direct", None)  # configure's, put back after
    try:
        logs.configure(Settings(log_format="json", log_level="INFO"))
        out = io.StringIO()
        root.handlers[0].setStream(out)  # type: ignore[attr-defined]
        monkeypatch.setattr(logs.time, "time", lambda: created)
        observe.record("POST", "/concerts/{concert_id}/queue", 201, 0.0123456, 0.001, 7)
        written = out.getvalue()
        # what logging itself makes of the same request at the same moment
        record = logging.LogRecord(logs.ACCESS, logging.INFO, __file__, 1, "request", None, None)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        record.__dict__.update(
            method="POST",
            route="/concerts/{concert_id}/queue",
            status=201,
            duration_ms=12.346,
            concert=7,
        )
        assert written == JsonFormatter().format(record) + "\n"
        # another listener (here a second handler) gets the record through logging instead
        heard: list[logging.LogRecord] = []
        listener = logging.Handler()
        listener.emit = heard.append  # type: ignore[method-assign]
        root.addHandler(listener)
        observe.record("GET", "/healthz", 200, 0.001, 0.0, None)
        assert [r.route for r in heard] == ["/healthz"]  # type: ignore[attr-defined]
        assert out.getvalue().count("\n") == 2 and '"route":"/healthz"' in out.getvalue()
    finally:
        root.handlers[:] = kept[0]
        root.setLevel(kept[1])


def test_access_lines_a_closed_loop_never_wrote_go_out_with_the_next_loops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from frontrow import logs
    from frontrow.config import Settings

    class Loop:
        """A loop that only takes note of what it is asked to run."""

        def __init__(self) -> None:
            self.soon: list[Any] = []

        def call_soon(self, callback: Any) -> None:
            self.soon.append(callback)

    root = logging.getLogger()
    kept = root.handlers[:], root.level
    monkeypatch.setattr(logs, "_direct", None)
    monkeypatch.setattr(logs, "_pending", [])
    monkeypatch.setattr(logs, "_writer", None)
    try:
        logs.configure(Settings(log_format="json", log_level="INFO"))
        out = io.StringIO()
        root.handlers[0].setStream(out)  # type: ignore[attr-defined]
        closed, running = Loop(), Loop()
        monkeypatch.setattr(logs.asyncio, "get_running_loop", lambda: closed)
        logs.access({"route": "/a"})
        logs.access({"route": "/b"})
        assert len(closed.soon) == 1 and out.getvalue() == ""  # one write for the turn
        # that loop closed before its turn ended; the next loop's turn writes all three
        monkeypatch.setattr(logs.asyncio, "get_running_loop", lambda: running)
        logs.access({"route": "/c"})
        assert len(running.soon) == 1
        running.soon[0]()
        assert [orjson.loads(line)["route"] for line in out.getvalue().splitlines()] == [
            "/a",
            "/b",
            "/c",
        ]
    finally:
        root.handlers[:] = kept[0]
        root.setLevel(kept[1])


async def test_every_answer_is_counted_under_its_status(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from frontrow import app as app_module

    cases = [
        ("GET", "/no/such/route", "<unmatched>", 404),
        ("DELETE", "/healthz", "/healthz", 405),
        ("POST", "/concerts/1/queue", "/concerts/{concert_id}/queue", 401),
        ("GET", "/openapi.json", "/openapi.json", 500),
    ]

    async def counts() -> list[float]:
        text = (await client.get("/metrics")).text
        found = []
        for method, _, route, status in cases:
            labels = f'method="{method}",route="{route}",status="{status}"'
            match = re.search(
                r"^frontrow_http_requests_total\{" + re.escape(labels) + r"\} (\S+)$", text, re.M
            )
            found.append(float(match.group(1)) if match else 0.0)
        return found

    before = await counts()

    def broken(settings: Any) -> Any:
        raise ValueError("a bug")

    monkeypatch.setattr(app_module.openapi, "document", broken)
    for method, path, _, status in cases:
        if status == 500:  # answered 500 outside the app's middleware, then raised to the client
            with pytest.raises(ValueError):
                await client.request(method, path)
        else:
            assert (await client.request(method, path)).status_code == status
    assert [after - then for after, then in zip(await counts(), before, strict=True)] == [1] * 4


async def test_each_request_logs_one_line_without_secrets(
    client: httpx.AsyncClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="frontrow.access")
    token = store.tokens.user_token("logme")
    await client.post("/concerts/1/queue", headers=bearer(token))
    lines = [r for r in caplog.records if r.name == "frontrow.access"]
    assert len(lines) == 1
    record = lines[0]
    assert (record.method, record.route, record.status, record.concert) == (
        "POST",
        "/concerts/{concert_id}/queue",
        201,
        1,
    )
    assert token not in JsonFormatter().format(record)


async def test_stats_table_shows_each_queue(store: Store) -> None:
    import io

    from frontrow.stats import watch

    for i in range(5):
        await core.enter(store, f"s{i}", 1)
    out = io.StringIO()
    await watch(store, 1, once=True, out=out)
    text = out.getvalue()
    header, row = text.splitlines()[1], text.splitlines()[3]
    assert header.split()[:5] == ["concert", "title", "open", "waiting", "active"]
    assert row.startswith("1 ") and " 5 " in row and "yes" in row
    # 5 waiting at the configured 100/s: the last is admitted within a second
    assert "0m01s" in row


async def test_polls_on_the_fast_path_are_counted_and_logged(
    client: httpx.AsyncClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def count(text: str, status: int) -> float:
        labels = f'method="GET",route="/queue/token",status="{status}"'
        match = re.search(r"^frontrow_http_requests_total\{" + labels + r"\} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    before = (await client.get("/metrics")).text
    caplog.set_level(logging.INFO, logger="frontrow.access")
    _, token, _ = await core.enter(store, "poller", 1)
    for _ in range(3):
        assert (await client.get("/queue/token", headers=bearer(token))).status_code == 200
    assert (await client.get("/queue/token", headers=bearer("forged"))).status_code == 401
    after = (await client.get("/metrics")).text
    assert count(after, 200) == count(before, 200) + 3
    assert count(after, 401) == count(before, 401) + 1
    # by default a successful poll is counted, not logged; a failed one is both
    polls = [r for r in caplog.records if r.name == "frontrow.access" and r.route == "/queue/token"]
    assert [(r.status, r.concert) for r in polls] == [(401, None)]


async def test_log_polls_logs_every_poll(make_store: Any, caplog: pytest.LogCaptureFixture) -> None:
    from frontrow import catalog
    from tests.conftest import app_client

    store = await make_store(log_polls=True)
    await catalog.seed_demo(store.db)
    caplog.set_level(logging.INFO, logger="frontrow.access")
    _, token, _ = await core.enter(store, "chatty", 1)
    async with app_client(store) as client:
        for _ in range(2):
            await client.get("/queue/token", headers=bearer(token))
    polls = [r for r in caplog.records if r.name == "frontrow.access" and r.route == "/queue/token"]
    assert [(r.status, r.concert) for r in polls] == [(200, 1), (200, 1)]


def test_slow_and_sampled_polls_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    from frontrow import observe

    caplog.set_level(logging.INFO, logger="frontrow.access")
    observe.record_poll(200, observe.SLOW_POLL_S + 0.1, 0.0001, 1, False)
    assert [r.duration_ms for r in caplog.records] == [600.0]
    caplog.clear()
    for _ in range(observe.POLL_LOG_SAMPLE):
        observe.record_poll(200, 0.001, 0.0001, 1, False)
    assert len(caplog.records) == 1  # one in POLL_LOG_SAMPLE


async def test_a_request_is_charged_its_own_cpu_not_what_runs_while_it_waits() -> None:
    import asyncio
    import time

    from frontrow import observe

    def burn(seconds: float) -> None:
        until = time.thread_time() + seconds
        while time.thread_time() < until:
            pass

    async def request() -> None:
        burn(0.02)
        await asyncio.sleep(0.05)  # another request burns meanwhile
        burn(0.01)

    async def other() -> None:
        await asyncio.sleep(0.005)
        burn(0.04)

    spent = [0.0]
    await asyncio.gather(observe._Timed(request(), spent), other())
    assert 0.03 <= spent[0] < 0.045, spent


async def test_cpu_per_route_is_exported(client: httpx.AsyncClient, store: Store) -> None:
    token = await active_token(store, "cpu")
    for _ in range(3):
        assert (await client.get("/concerts/1/dates", headers=bearer(token))).status_code == 200
    assert (await client.get("/queue/token", headers=bearer(token))).status_code == 200
    text = (await client.get("/metrics")).text
    route = 'method="GET",route="/concerts/{concert_id}/dates"'
    assert sample(text, "frontrow_request_cpu_seconds_count", route) >= 3
    assert sample(text, "frontrow_request_cpu_seconds_sum", route) > 0
    poll = 'method="GET",route="/queue/token"'
    assert sample(text, "frontrow_request_cpu_seconds_count", poll) >= 1
    assert sample(text, "frontrow_request_cpu_seconds_sum", poll) > 0


async def test_a_served_process_collects_garbage_seldom(tmp_path: Any) -> None:
    """The young generation's threshold is set where each worker starts (its
    lifespan): `frontrow serve --workers 2` runs new interpreters, which
    inherited nothing the parent set (so workers ran at Python's 700)."""
    import gc

    from frontrow.app import GC_THRESHOLD, create_app
    from frontrow.config import Settings

    before = gc.get_threshold()
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db"))
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_threshold() == GC_THRESHOLD
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
