"""Operators by name (#27.5): several admin tokens, each named, the name and
an optional reason in every audit row; tokens never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontrow import catalog
from frontrow.config import ConfigError, Settings
from tests.conftest import MakeStore, app_client, bearer
from tests.e2e.test_queue_http import assert_problem

MINA = "mina-0123456789abcdef-0123456789abcdef"
JUN = "jun-0123456789abcdef-0123456789abcdef-x"
SECRET = {"FRONTROW_AUTH_SECRET": "s" * 40}


def settings(**env: str) -> Settings:
    return Settings.from_env({**SECRET, **env})


def test_named_tokens_are_read_from_pairs_or_a_file(tmp_path: Path) -> None:
    both = settings(FRONTROW_ADMIN_TOKENS=f"mina={MINA}, jun={JUN}")
    assert both.operators == (("mina", MINA), ("jun", JUN))
    listed = tmp_path / "operators"
    listed.write_text(f"# on-call for the 10:00 opening\nmina={MINA}\n\njun={JUN}\n")
    assert settings(FRONTROW_ADMIN_TOKENS=f"@{listed}").operators == both.operators
    single = settings(FRONTROW_ADMIN_TOKEN=MINA, FRONTROW_ADMIN_TOKENS=f"jun={JUN}")
    assert single.operators == (("admin", MINA), ("jun", JUN))
    masked = both.masked()["admin_tokens"]
    assert masked == ["mina=***", "jun=***"]


@pytest.mark.parametrize(
    "raw",
    [
        f"mina={MINA},mina={JUN}",  # one name twice
        f"mina={MINA},jun={MINA}",  # one token twice
        "mina=short",
        f"mi na={MINA}",
        f"{MINA}",  # no name
        "@/nowhere/operators",
    ],
)
def test_a_bad_list_stops_the_start_without_showing_a_token(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(FRONTROW_ADMIN_TOKENS=raw)
    assert "FRONTROW_ADMIN_TOKENS" in str(refused.value)
    assert MINA not in str(refused.value) and JUN not in str(refused.value)


def test_the_single_token_is_the_operator_named_admin() -> None:
    with pytest.raises(ConfigError, match="named admin"):
        settings(FRONTROW_ADMIN_TOKEN=MINA, FRONTROW_ADMIN_TOKENS=f"admin={JUN}")
    with pytest.raises(ConfigError, match="named admin"):
        settings(FRONTROW_ADMIN_TOKEN=MINA, FRONTROW_ADMIN_TOKENS=f"jun={MINA}")


async def test_every_audit_row_names_its_operator_and_reason(make_store: MakeStore) -> None:
    store = await make_store(admin_token=None, admin_tokens=(("mina", MINA), ("jun", JUN)))
    await catalog.seed_demo(store.db)
    url = "/admin/concerts/1/queue"
    async with app_client(store) as client:
        paused = {"admit_batch": 0, "reason": "  payments provider down  "}
        assert (await client.patch(url, headers=bearer(MINA), json=paused)).is_success
        assert (await client.patch(url, headers=bearer(JUN), json={"admit_batch": 50})).is_success
        for bad in ({"reason": "only why"}, {"admit_batch": 9, "reason": "x" * 201}):
            refused = await client.patch(url, headers=bearer(JUN), json=bad)
            assert_problem(refused, 422, "VALIDATION_FAILED")
        assert (await client.get(url, headers=bearer(MINA))).json()["admit_batch"] == 50
        wrong = await client.patch(url, headers=bearer(MINA[:-1] + "?"), json={"admit_batch": 1})
        assert_problem(wrong, 401, "UNAUTHENTICATED")
        changes = (await client.get("/admin/concerts/1/audit", headers=bearer(JUN))).json()
    rows = [(c["new"], c["operator"], c["reason"]) for c in changes["changes"]]
    assert rows == [(50, "jun", None), (0, "mina", "payments provider down")]
    # the console's page answers for any operator's configuration
    async with app_client(store) as client:
        assert (await client.get("/admin")).status_code == 200
