"""Logging set-up: level and format (json or text) from settings."""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from typing import Any

import orjson

from frontrow.config import Settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}
_second: tuple[int, str] = (-1, "")


def stamp(created: float) -> str:
    """A log line's time, UTC to the millisecond (the second's text made once a second)."""
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    # the millisecond as LogRecord.msecs takes it
    return f"{_second[1]}.{int((created - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD)
        base = super().format(record)
        return f"{base} {extras}" if extras else base


ACCESS = "frontrow.access"
_access = logging.getLogger(ACCESS)
_root = logging.getLogger()
_direct: logging.StreamHandler[Any] | None = None  # configure()'s handler, in the json format
_pending: list[str] = []  # access lines of this turn of the event loop, not written yet
# the loop whose turn's end writes them (a loop closed meanwhile never will)
_writer: asyncio.AbstractEventLoop | None = None


def access(fields: dict[str, Any]) -> None:
    """One request's access line, at INFO (the caller checked the level).

    In the json format, while configure()'s handler is the only one
    listening, the line JsonFormatter would make is kept and the lines of
    one turn of the event loop are written to its stream at the turn's end,
    in one write: logging's record, handler chain and formatter, and a write
    a line, cost a served worker tens of microseconds a request (`python -m
    bench rush`, INFO against WARNING). A warning logged in the same turn
    may come out before that turn's access lines; each line has its time.
    Anything else that listens (another handler, a test's caplog, a filter)
    gets the record through logging."""
    handler = _direct
    if handler is None or _root.handlers != [handler] or _access.handlers or _access.filters:
        _access.info("request", extra=fields)
        return
    line = {"ts": stamp(time.time()), "level": "INFO", "logger": ACCESS, "msg": "request"}
    line.update(fields)
    _pending.append(orjson.dumps(line, default=str).decode())
    global _writer
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # outside the event loop: now
        write_pending()
        return
    if _writer is not loop:
        _writer = loop
        loop.call_soon(write_pending)


def write_pending() -> None:
    """Write the kept access lines (at each turn's end, and at exit)."""
    global _writer
    _writer = None
    handler = _direct
    if not _pending or handler is None:
        return
    text = handler.terminator.join(_pending) + handler.terminator
    _pending.clear()
    try:
        with handler.lock:  # type: ignore[union-attr]
            handler.stream.write(text)
            handler.stream.flush()
    except Exception:  # as StreamHandler's: a broken stream never fails a request
        handler.handleError(logging.makeLogRecord({"name": ACCESS, "msg": "access lines lost"}))


atexit.register(write_pending)


def configure(settings: Settings) -> None:
    # Neither format shows where a call was made nor its thread or process:
    # not gathering them takes a tenth off every access line (the logging
    # HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    global _direct
    handler = logging.StreamHandler()
    json = settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    _root.handlers[:] = [handler]
    _root.setLevel(settings.log_level)
    write_pending()  # to the handler they were made for
    _direct = handler if json else None
