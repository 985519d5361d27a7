"""Run `frontrow serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

NO_RATE_LIMITS = {
    "FRONTROW_ENTER_PER_USER": "0",
    "FRONTROW_HOLD_PER_USER": "0",
    "FRONTROW_REQUESTS_PER_IP": "0",
    "FRONTROW_DEMO_LOGINS_PER_IP": "0",
}


# Every test that runs a real `frontrow serve` runs on each server it offers.
SERVERS = ("uvicorn", "granian")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(
    env: dict[str, str],
    workers: int = 1,
    cwd: str | None = None,
    output: Any = None,
    args: tuple[str, ...] = (),
    server: str = "uvicorn",
    port: int | None = None,
) -> Iterator[str]:
    """Start the service, wait until it is ready, yield its base URL, stop it
    (SIGTERM: it finishes what is in flight)."""
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTROW_")}
    # Every test client comes from one address in bursts: no rate limits unless asked.
    full_env.update(NO_RATE_LIMITS)
    full_env.update(env)
    # A file, never a pipe nobody reads: a full pipe would block the server's logging.
    log = output or tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "frontrow",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--server",
            server,
            *args,
        ],
        env=full_env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"frontrow serve exited: {log.read()[-3000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("frontrow serve did not become ready in 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            # idle keep-alive connections are left to their clients (server.py)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if output is None:
            log.close()
