"""Settings, read once from FRONTROW_* environment variables."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

Network = IPv4Network | IPv6Network


class ConfigError(ValueError):
    """A FRONTROW_* variable has a value the service cannot run with."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1 or 0")


def _int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("must be an integer") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"between {low} and {high}"
            raise ValueError(f"must be an integer {bound}")
        return value

    return parse


def _float(low: float, allow_low: bool) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number") from None
        ok = value >= low if allow_low else value > low
        if not ok or value == float("inf"):
            raise ValueError(f"must be a number {'>=' if allow_low else '>'} {low:g}")
        return value

    return parse


_positive_float = _float(0, allow_low=False)


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _admin_token(raw: str) -> str:
    value = _text(raw)
    if len(value) < 32:
        raise ValueError("must be at least 32 characters (it guards every live setting)")
    # it travels in an Authorization header: a longer or non-ASCII one could
    # never be sent, and every request would be refused
    if len(value) > 512 or not all("!" <= ch <= "~" for ch in value):
        raise ValueError("must be at most 512 printable ASCII characters, without spaces")
    return value


SECRETS = ("auth_secret", "admin_token", "admin_tokens")
OPERATOR_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")


def _admin_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    """Named admin tokens, `name=token,name=token`, or `@path` to a file of
    `name=token` lines (blank lines and `#` comments skipped): each
    operator signs their own changes in the audit."""
    text_ = _text(raw)
    if text_.startswith("@"):
        try:
            text_ = Path(text_[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {text_[1:]}: {exc.strerror}") from None
        lines = (ln.strip() for ln in text_.splitlines())
        parts = [ln for ln in lines if ln and not ln.startswith("#")]
    else:
        parts = [p.strip() for p in text_.split(",") if p.strip()]
    out: list[tuple[str, str]] = []
    for part in parts:
        name, sep, token = part.partition("=")
        name = name.strip()
        if not sep or not OPERATOR_NAME.fullmatch(name):
            raise ValueError("give name=token pairs; a name is 1-32 of A-Z a-z 0-9 . _ -")
        try:
            out.append((name, _admin_token(token)))
        except ValueError as exc:
            raise ValueError(f"the token of {name} {exc}") from None
    if not out:
        raise ValueError("must name at least one operator")
    if len({n for n, _ in out}) < len(out) or len({t for _, t in out}) < len(out):
        raise ValueError("every operator needs a name and a token of their own")
    return tuple(out)


def _addresses(raw: str) -> tuple[tuple[str, int], ...]:
    out = []
    for part in (p.strip() for p in raw.split(",")):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port pairs separated by commas")
        out.append((host.strip("[]"), int(port)))
    return tuple(out)


def _networks(raw: str) -> tuple[Network, ...]:
    try:
        return tuple(ip_network(part.strip()) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError("expected addresses or networks separated by commas") from None


# Money settings stay far enough below the BIGINT columns' 2**63 that
# `balance + amount` can never overflow inside the database.
MONEY_LIMIT = 10**18


def _database_url(raw: str) -> str:
    url = _text(raw)
    # Plain libpq URLs are common in the wild; pin them to the psycopg 3 async driver.
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    if not url.startswith(("postgresql+psycopg://", "sqlite+aiosqlite://")):
        raise ValueError("expected postgresql+psycopg://... or sqlite+aiosqlite:///...")
    return url


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return value


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("json", "text"):
        raise ValueError("expected json or text")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str | None = None
    redis_cluster: bool = False
    # Redis with failover: the Sentinels to ask, and the name of the master they watch
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_master: str | None = None
    redis_timeout_s: float = 2.0
    # a PostgreSQL that stops answering (its packets lost) fails a request
    # within this instead of hanging it: connect timeout, TCP user timeout
    database_timeout_s: float = 3.0
    # connections each process keeps to PostgreSQL, opened once and kept: one
    # opened under a burst is a fork and an authentication on the server
    database_pool: int = 20
    database_url: str = "sqlite+aiosqlite:///./frontrow.db"
    auth_secret: str = ""
    admin_token: str | None = None
    admin_tokens: tuple[tuple[str, str], ...] = ()
    demo_login: bool = False
    admit_batch: int = 100
    admit_interval_s: float = 1.0
    max_active: int = 0
    # a tick lets in no more than the free seats less the live sessions
    # (off: the contract's k a tick, bounded by max_active)
    admit_within_seats: bool = False
    admit_target_p99_ms: int = 0
    admit_batch_min: int = 1
    admit_batch_max: int = 1000
    sweep_interval_s: float = 5.0
    session_ttl_s: float = 1800
    session_max_s: float = 0
    abandon_after_s: float = 120
    prequeue_spread_s: float = 30
    hold_ttl_s: float = 300
    max_holds_per_user: int = 4
    max_tickets_per_user: int = 4  # seats bought plus held per concert, 0 = no limit
    max_charge: int = 10_000_000
    max_balance: int = 1_000_000_000
    schedulers: bool = False
    rate_window_s: float = 60
    enter_per_user: int = 20
    hold_per_user: int = 60
    maps_per_user: int = 120  # seat maps and section overviews a user reads per window
    requests_per_ip: int = 600
    demo_logins_per_ip: int = 30
    admin_failures_per_ip: int = 10  # wrong admin tokens per address per window
    log_polls: bool = False
    key_prefix: str = "fr"
    log_level: str = "INFO"
    log_format: str = "json"
    user_token_max_age_s: float = 86400
    trusted_proxies: tuple[Network, ...] = ()
    max_connections: int = 2048
    header_timeout_s: float = 10.0
    # uvicorn closes a connection idle this long: longer than a proxy's own
    # idle timeout for its upstream connections, so the proxy always closes
    # first and never reuses one the server is closing (deploy/nginx.conf)
    keep_alive_s: float = 15.0
    max_header_bytes: int = 16 * 1024

    @property
    def embedded(self) -> bool:
        """True when Redis is the in-process fakeredis (one process only)."""
        return self.redis_url is None and not self.redis_sentinels

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from FRONTROW_* variables; raise ConfigError naming a bad one."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            var = "FRONTROW_" + name.upper()
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                shown = "***" if name in SECRETS else repr(raw)  # never a secret in a log
                raise ConfigError(f"{var}={shown} is invalid: {exc}") from None
        embedded = values.get("redis_url") is None and not values.get("redis_sentinels")
        values.setdefault("demo_login", embedded)
        values.setdefault("schedulers", embedded)
        if "auth_secret" not in values:
            if not embedded:
                raise ConfigError(
                    "FRONTROW_AUTH_SECRET is required with a real Redis "
                    "(FRONTROW_REDIS_URL or FRONTROW_REDIS_SENTINELS) "
                    "(every process must sign and verify tokens with the same key)"
                )
            values["auth_secret"] = secrets.token_urlsafe(32)
        if len(values["auth_secret"].encode()) < 32:
            raise ConfigError(
                "FRONTROW_AUTH_SECRET is invalid: must be at least 32 bytes (HS256 key)"
            )
        if values.get("admit_batch_min", 1) > values.get("admit_batch_max", 1000):
            raise ConfigError("FRONTROW_ADMIT_BATCH_MIN is above FRONTROW_ADMIT_BATCH_MAX")
        if values.get("redis_cluster") and values.get("redis_url") is None:
            raise ConfigError("FRONTROW_REDIS_CLUSTER=1 needs FRONTROW_REDIS_URL")
        if values.get("redis_sentinels"):
            if values.get("redis_url") is not None:
                raise ConfigError(
                    "FRONTROW_REDIS_SENTINELS and FRONTROW_REDIS_URL are two ways to one"
                    " Redis: set one of them"
                )
            if not values.get("redis_master"):
                raise ConfigError("FRONTROW_REDIS_SENTINELS needs FRONTROW_REDIS_MASTER")
        elif values.get("redis_master"):
            raise ConfigError("FRONTROW_REDIS_MASTER needs FRONTROW_REDIS_SENTINELS")
        named = values.get("admin_tokens", ())
        if values.get("admin_token") and any(
            n == "admin" or t == values["admin_token"] for n, t in named
        ):
            raise ConfigError(
                "FRONTROW_ADMIN_TOKEN is the operator named admin: FRONTROW_ADMIN_TOKENS"
                " may not use that name or token again"
            )
        return cls(**values)

    @property
    def operators(self) -> tuple[tuple[str, str], ...]:
        """Every admin credential by its operator's name; FRONTROW_ADMIN_TOKEN
        is the one named `admin`. Empty: no admin API at all (404)."""
        single = (("admin", self.admin_token),) if self.admin_token else ()
        return single + self.admin_tokens

    def masked(self) -> dict[str, Any]:
        """The effective settings with secrets hidden, for the start-up log."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("auth_secret", "admin_token") and value:
                value = "***"
            elif f.name == "admin_tokens" and value:
                value = [f"{name}=***" for name, _ in value]
            elif f.name in ("redis_url", "database_url") and value and "@" in value:
                scheme, _, rest = value.partition("://")
                value = f"{scheme}://***@{rest.rpartition('@')[2]}"
            out[f.name] = value
        return out


_PARSERS: dict[str, Callable[[str], Any]] = {
    "redis_url": _text,
    "redis_cluster": _bool,
    "redis_sentinels": _addresses,
    "redis_master": _text,
    "redis_timeout_s": _positive_float,
    "database_timeout_s": _positive_float,
    "database_pool": _int(1, 1000),
    "database_url": _database_url,
    "auth_secret": _text,
    "admin_token": _admin_token,
    "admin_tokens": _admin_tokens,
    "demo_login": _bool,
    "admit_batch": _int(0, 1_000_000),
    "admit_interval_s": _positive_float,
    "max_active": _int(0),
    "admit_within_seats": _bool,
    "admit_target_p99_ms": _int(0, 600_000),
    "admit_batch_min": _int(1, 1_000_000),
    "admit_batch_max": _int(1, 1_000_000),
    "sweep_interval_s": _positive_float,
    "session_ttl_s": _positive_float,
    "session_max_s": _float(0, allow_low=True),
    "abandon_after_s": _positive_float,
    "prequeue_spread_s": _positive_float,
    "hold_ttl_s": _positive_float,
    "max_holds_per_user": _int(1, 100),
    "max_tickets_per_user": _int(0, 10_000),
    "max_charge": _int(1, MONEY_LIMIT),
    "max_balance": _int(1, MONEY_LIMIT),
    "schedulers": _bool,
    "rate_window_s": _positive_float,
    "enter_per_user": _int(0),
    "hold_per_user": _int(0),
    "maps_per_user": _int(0),
    "requests_per_ip": _int(0),
    "demo_logins_per_ip": _int(0),
    "admin_failures_per_ip": _int(0),
    "log_polls": _bool,
    "key_prefix": _text,
    "log_level": _log_level,
    "log_format": _log_format,
    "user_token_max_age_s": _positive_float,
    "trusted_proxies": _networks,
    "max_connections": _int(1, 1_000_000),
    "keep_alive_s": _positive_float,
    "header_timeout_s": _positive_float,
    "max_header_bytes": _int(1024, 1024 * 1024),
}
