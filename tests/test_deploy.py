"""deploy/: the alert rules pass promtool, and every metric and route that the
alerts and the Grafana dashboard name is one frontrow exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from frontrow.store import Store
from tests.conftest import active_token, bearer, unavailable

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "frontrow.json"
METRIC = re.compile(r"\bfrontrow_[a-z0-9_]+")
ROUTE = re.compile(r'route="([^"]+)"')


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool is missing (Debian package prometheus)")
    return found


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert panels and all(p["targets"] for p in panels)
    return [t["expr"] for p in panels for t in p["targets"]]


def test_the_alert_rules_pass_promtool() -> None:
    out = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 rules found" in out.stdout


def test_the_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    # compose mounts the rules at /etc/prometheus; here they are read from the repo
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(ALERTS))
    )
    out = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


async def test_every_metric_and_route_named_in_deploy_is_exported(
    client: httpx.AsyncClient, store: Store
) -> None:
    # a hold, so that the families with labels have a sample
    token = await active_token(store, "ann")
    day = (await client.get("/concerts/1/dates", headers=bearer(token))).json()["dates"][0]
    url = f"/concerts/1/dates/{day['date']}/seats/1/hold"
    assert (await client.post(url, headers=bearer(token))).status_code == 201
    scrape = (await client.get("/metrics")).text
    exported = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
    routes = {getattr(r, "path", "") for r in client._transport.app.routes}  # type: ignore[attr-defined]
    queries = [*dashboard_queries(), ALERTS.read_text()]
    named = {m for q in queries for m in METRIC.findall(q)}
    assert len(named) >= 10 and named <= exported, named - exported
    templates = {r.replace("{concert_id:id}", "{concert_id}") for r in routes}
    assert {r for q in queries for r in ROUTE.findall(q)} <= templates
