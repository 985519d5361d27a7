"""python -m bench.fastpysgi_run TARGET --workers N --port P: an ASGI app on
fastpysgi (a C HTTP server on libuv; `pip install fastpysgi`), for the
server comparison in `python -m bench --servers ...,fastpysgi` only.

TARGET is `bench.ceiling:app`, or `frontrow` for frontrow's app set up the
way `frontrow serve` sets it up (schema, collector tuning). One worker only:
fastpysgi forks its workers and leaves them running when the parent is
stopped. frontrow does not serve on fastpysgi: it spins a whole core while
idle (README, Performance), and frontrow's bounds on request heads and
connections are uvicorn's and granian's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
from typing import Any


def app_for(target: str) -> Any:
    if target != "frontrow":
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)
    from frontrow.__main__ import _migrate
    from frontrow.app import create_app
    from frontrow.config import Settings

    settings = Settings.from_env()
    asyncio.run(_migrate(settings, seed=settings.embedded))
    return create_app()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fastpysgi_run")
    parser.add_argument("target")
    parser.add_argument("--workers", type=int, default=1, choices=[1])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import fastpysgi

    app = app_for(args.target)
    gc.set_threshold(50_000, 20, 20)  # as frontrow serve and bench.ceiling
    fastpysgi.server.lifespan = 1
    fastpysgi.run(app, host="127.0.0.1", port=args.port, loglevel=0)


if __name__ == "__main__":
    main()
