"""A real Prometheus scrapes a real `frontrow serve` with deploy/'s rules:
every dashboard query evaluates, every rule is healthy, and the numbers
Grafana would draw are the console's."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import unavailable
from tests.e2e.server import free_port, serve

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ADMIN = "monitoring-admin-0123456789abcdef-01234"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus is missing (Debian package prometheus)")
    work = tmp_path_factory.mktemp("prometheus")
    env = {
        "FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{work}/db.sqlite",
        "FRONTROW_ADMIN_TOKEN": ADMIN,
        "FRONTROW_ADMIT_BATCH": "0",  # everyone waits: the numbers hold still
    }
    with serve(env) as app:
        config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
        config = config.replace(
            "/etc/prometheus/alerts.yml", str(DEPLOY / "prometheus" / "alerts.yml")
        )
        config = config.replace("app:8000", app.removeprefix("http://"))
        config = config.replace("scrape_interval: 5s", "scrape_interval: 1s")
        (work / "prometheus.yml").write_text(config)
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield app, f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(prom + "/api/v1/query", params={"query": expr}, timeout=5).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def until(check: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "Prometheus never saw it"
        time.sleep(0.5)


def test_grafana_draws_the_consoles_numbers(prometheus: tuple[str, str]) -> None:
    app, prom = prometheus
    for _ in range(5):
        user = httpx.post(app + "/auth/demo").json()["access_token"]
        joined = httpx.post(app + "/concerts/1/queue", headers={"Authorization": f"Bearer {user}"})
        assert joined.status_code == 201
    # two scrapes after the line formed, so that rates have two points
    until(lambda: [r for r in query(prom, "frontrow_queue_waiting") if r["value"][1] == "5"])
    until(lambda: query(prom, "rate(frontrow_http_requests_total[1m])"))

    panels = json.loads((DEPLOY / "grafana" / "frontrow.json").read_text())["panels"]
    results = {p["title"]: query(prom, p["targets"][0]["expr"]) for p in panels}
    console = httpx.get(
        app + "/admin/concerts/1/live", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert float(results["Waiting"][0]["value"][1]) == console["series"]["waiting"][-1] == 5
    assert float(results["Active sessions"][0]["value"][1]) == console["series"]["active"][-1]
    left = {r["metric"]["date"]: float(r["value"][1]) for r in results["Seats left by date"]}
    assert left == {d["date"]: d["left"] for d in console["dates"]}
    assert {r["metric"]["backend"] for r in results["Backends up"]} == {"redis", "database"}
    assert results["Poll p99"] == [] or float(results["Poll p99"][0]["value"][1]) >= 0

    def rules() -> list[dict[str, Any]]:
        groups = httpx.get(prom + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        return list(groups[0]["rules"])

    until(lambda: all(r["health"] != "unknown" for r in rules()))  # each evaluated once
    assert len(rules()) == 6 and all(r["health"] == "ok" for r in rules()), rules()
