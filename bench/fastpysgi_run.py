"""python -m bench.fastpysgi_run TARGET --workers N --port P: an ASGI app on
fastpysgi (a C HTTP server on libuv; `pip install fastpysgi`), for the
server comparison in `python -m bench --servers ...,fastpysgi` only.

TARGET is `bench.ceiling:app`, or `frontrow` for frontrow's app set up the
way `frontrow serve` sets it up for its workers (schema, metrics directory,
collector tuning). frontrow does not serve on fastpysgi: its bounds on
request heads and connections are uvicorn's and granian's (README).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import os
import tempfile
from typing import Any


def app_for(target: str, workers: int) -> Any:
    if target != "frontrow":
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)
    from frontrow.__main__ import _migrate
    from frontrow.app import create_app
    from frontrow.config import Settings

    settings = Settings.from_env()
    asyncio.run(_migrate(settings, seed=settings.embedded))
    if workers > 1:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))
    return create_app()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fastpysgi_run")
    parser.add_argument("target")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import fastpysgi

    app = app_for(args.target, args.workers)
    gc.set_threshold(50_000, 20, 20)  # as frontrow serve and bench.ceiling
    fastpysgi.server.lifespan = 1
    fastpysgi.run(app, host="127.0.0.1", port=args.port, workers=args.workers, loglevel=0)


if __name__ == "__main__":
    main()
