"""The package's shape: strict types, and dependencies that point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_package_type_checks_strictly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_poll_path_imports_no_booking_or_wallet() -> None:
    # metrics is on the poll's hot path: domains register with it, never the reverse,
    # and no import hides inside a function either
    poll_path = ["metrics.py", "observe.py", "queue/fastpoll.py", "queue/core.py", "queue/batch.py"]
    for name in poll_path:
        tree = ast.parse((ROOT / "frontrow" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            elif isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            else:
                continue
            for module in imported:
                assert not module.startswith(("frontrow.booking", "frontrow.wallet")), (
                    name,
                    module,
                )
