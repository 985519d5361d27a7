"""Failure tooling for the tests: a TCP proxy that can be cut, a redis-server of our own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from frontrow import catalog
from frontrow.config import Settings
from frontrow.store import Store, open_store
from tests.conftest import SECRET
from tests.e2e.server import free_port


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a target until cut(); restore() reopens the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted as the cut came
            writer.transport.abort()
            return
        self._writers.add(writer)  # a cut while the upstream is being reached ends it too
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._writers.discard(writer)
            writer.transport.abort()
            return
        if writer not in self._writers:  # cut meanwhile
            up_writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        """Refuse new connections and drop every live one, as a dead host would."""
        if self._server is not None:
            server, self._server = self._server, None
            # Stop accepting first, and let connections already accepted
            # attach (their handlers abort them): closing at once races
            # CPython 3.11's accept, whose transport then fails to attach to a
            # closed server (an AssertionError) and is left unclosed.
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
            await asyncio.sleep(0.01)
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        # connections accepted just before the close have their handler
        # scheduled but not run: let them see the cut and abort, or their
        # transports outlive the test unclosed (a ResourceWarning, an error here)
        await asyncio.sleep(0.05)

    def freeze(self) -> None:
        """Keep every connection open but pass nothing on, as a host that
        stopped answering does (its packets lost, or the server stuck)."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def restore(self) -> None:
        await self.start()


class OwnRedis:
    """A redis-server on a spare loopback port and a Unix socket, without
    persistence, killable."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        # a socket path may not pass ~100 bytes: not under pytest's long tmp_path
        self.socket = Path(tempfile.mkdtemp(prefix="redis-")) / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--unixsocket",
                str(self.socket),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def client(self) -> Any:
        """An asyncio client of this server (decoded answers)."""
        return redis.asyncio.Redis(port=self.port, decode_responses=True)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


async def demo_store(tmp_path: Path, **settings: Any) -> Store:
    """A store on the Redis `settings` name and a SQLite file of the test's,
    the demo concert loaded; Redis calls give up after 0.5 s."""
    store = open_store(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
            auth_secret=SECRET,
            redis_timeout_s=0.5,
            **settings,
        )
    )
    await catalog.migrate(store.db)
    await catalog.seed_demo(store.db)
    return store


@contextlib.contextmanager
def admitters(env: dict[str, str], count: int = 1) -> Iterator[None]:
    """`count` `frontrow admitter` processes on `env`, stopped with SIGTERM at
    the end; each must then stop cleanly (exit 0)."""
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "frontrow", "admitter"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for admitter in running:
            admitter.terminate()
        codes = [admitter.wait(timeout=15) for admitter in running]
    assert codes == [0] * count, f"admitters exited {codes} on SIGTERM"
