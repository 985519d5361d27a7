"""README's curl walkthrough, pasted into bash against a live `frontrow serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import unavailable
from tests.e2e.server import serve

README = Path(__file__).parents[2] / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    section = text[text.index("## A purchase with curl") :]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start : section.index("```", start)]


def test_the_curl_walkthrough_buys_a_seat(tmp_path: Path, http_server: str) -> None:
    missing = [tool for tool in ("curl", "jq", "bash") if shutil.which(tool) is None]
    if missing:
        unavailable(f"missing {missing}")
    env = {"FRONTROW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"}
    with serve(env, server=http_server) as url:
        script = walkthrough().replace("B=http://127.0.0.1:8000", f"B={url}", 1)
        assert script != walkthrough(), "the walkthrough no longer sets B="
        # the admitter runs every second: wait for ACTIVE as a reader would
        script = script.replace(
            '| jq  # poll until "ACTIVE"',
            '| jq; until curl -s $B/queue/token -H "Authorization: Bearer $Q" '
            "| grep -q ACTIVE; do sleep 0.5; done",
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    receipts = json.loads(result.stdout[result.stdout.rindex('{\n  "receipts"') :])
    assert [s["seat_no"] for s in receipts["receipts"][0]["seats"]] == [7]
