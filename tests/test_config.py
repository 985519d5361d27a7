"""Settings come from FRONTROW_* variables; a bad one stops start-up by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from frontrow.config import ConfigError, Settings


def test_embedded_defaults() -> None:
    s = Settings.from_env({})
    assert s.embedded and s.demo_login and s.schedulers
    assert len(s.auth_secret) >= 32
    assert (s.admit_batch, s.admit_interval_s, s.max_active) == (100, 1.0, 0)
    assert (s.hold_ttl_s, s.max_holds_per_user, s.session_ttl_s) == (300, 4, 1800)


def test_real_backends_need_a_secret() -> None:
    with pytest.raises(ConfigError, match="FRONTROW_AUTH_SECRET"):
        Settings.from_env({"FRONTROW_REDIS_URL": "redis://localhost"})
    s = Settings.from_env(
        {
            "FRONTROW_REDIS_URL": "redis://localhost",
            "FRONTROW_AUTH_SECRET": "k" * 32,
            "FRONTROW_DATABASE_URL": "postgresql://u@h/db",
        }
    )
    assert not s.embedded and not s.demo_login and not s.schedulers
    assert s.database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("FRONTROW_ADMIT_BATCH", "ten"),
        ("FRONTROW_ADMIT_BATCH", "-1"),
        ("FRONTROW_ADMIT_INTERVAL_S", "0"),
        ("FRONTROW_ADMIT_INTERVAL_S", "nan"),
        ("FRONTROW_MAX_ACTIVE", "1.5"),
        ("FRONTROW_HOLD_TTL_S", "-3"),
        ("FRONTROW_SCHEDULERS", "maybe"),
        ("FRONTROW_DATABASE_URL", "mysql://x"),
        ("FRONTROW_AUTH_SECRET", "short"),
        ("FRONTROW_MAX_HOLDS_PER_USER", "0"),
        ("FRONTROW_ADMIN_TOKEN", "a"),
        ("FRONTROW_ADMIN_TOKEN", "x" * 31),
        ("FRONTROW_ADMIN_TOKEN", "x" * 5000),
        ("FRONTROW_ADMIN_TOKEN", "관리자" * 12),
        ("FRONTROW_ADMIN_TOKEN", "a b" * 12),
        ("FRONTROW_MAX_CHARGE", str(10**20)),
        ("FRONTROW_MAX_BALANCE", str(2**63)),
        ("FRONTROW_TRUSTED_PROXIES", "10.0.0.1, not-an-address"),
        ("FRONTROW_USER_TOKEN_MAX_AGE_S", "0"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=var):
        Settings.from_env({var: value})


def test_cli_reports_a_bad_value_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "frontrow", "migrate"],
        env={"FRONTROW_ADMIT_BATCH": "lots", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "frontrow: FRONTROW_ADMIT_BATCH='lots' is invalid: must be an integer"
    ]


def test_secrets_are_masked() -> None:
    s = Settings.from_env(
        {
            "FRONTROW_ADMIN_TOKEN": "topsecret-0123456789abcdef-0123456789",
            "FRONTROW_DATABASE_URL": "postgresql://user:pw@db/x",
        }
    )
    shown = s.masked()
    assert shown["admin_token"] == "***" and shown["auth_secret"] == "***"
    assert "pw" not in shown["database_url"]


def test_trusted_proxies_parse_as_networks() -> None:
    s = Settings.from_env({"FRONTROW_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"})
    assert [str(n) for n in s.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert Settings.from_env({}).trusted_proxies == ()


def test_sentinels_name_the_master_and_replace_the_url() -> None:
    secret = {"FRONTROW_AUTH_SECRET": "s" * 40}
    sentinels = {"FRONTROW_REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380", **secret}
    settings = Settings.from_env({**sentinels, "FRONTROW_REDIS_MASTER": "frontrow"})
    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert settings.redis_master == "frontrow" and not settings.embedded
    with pytest.raises(ConfigError, match="FRONTROW_REDIS_MASTER"):
        Settings.from_env(sentinels)
    with pytest.raises(ConfigError, match="set one of them"):
        Settings.from_env(
            {**sentinels, "FRONTROW_REDIS_MASTER": "m", "FRONTROW_REDIS_URL": "redis://x"}
        )
    with pytest.raises(ConfigError, match="FRONTROW_REDIS_SENTINELS"):
        Settings.from_env({"FRONTROW_REDIS_SENTINELS": "nohost", **secret})
    with pytest.raises(ConfigError, match="FRONTROW_AUTH_SECRET"):
        Settings.from_env({"FRONTROW_REDIS_SENTINELS": "h:1", "FRONTROW_REDIS_MASTER": "m"})
