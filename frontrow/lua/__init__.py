"""Lua scripts, one file per atomic operation, registered once per client.

redis-py's Script runs EVALSHA and reloads the source on NOSCRIPT, so a
Redis that restarted empty needs nothing from us.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any


def _read(name: str) -> str:
    return files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def source(name: str) -> str:
    """A script as Redis runs it: the shared helpers of _lib.lua, then the script."""
    return _read("_lib") + _read(name)


class Scripts:
    """The registered scripts of one Redis client, by file name."""

    # every .lua file of this package, so a new script needs no list to update
    NAMES = tuple(
        sorted(
            f.name[:-4]
            for f in files(__package__).iterdir()
            if f.name.endswith(".lua") and not f.name.startswith("_")
        )
    )

    def __init__(self, redis: Any) -> None:
        for name in self.NAMES:
            setattr(self, name, redis.register_script(source(name)))

    enter: Any
    status: Any
    leave: Any
    admit: Any
    sweep: Any
    hold: Any
    release: Any
    claim: Any
    finalize: Any
    seats: Any
    counts: Any
    load_sold: Any
    ratelimit: Any
    sold_out: Any
    unclaim: Any
    best: Any
    rules: Any
    lottery: Any
