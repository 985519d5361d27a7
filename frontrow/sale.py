"""The sale event of a concert: schedule, mode, proof of work and the lottery.

A concert's sale lives in its catalog row (the file, or PATCH of the admin
API), so every app process and admitter reads the same values from its
catalog copy (reread within seconds of a change). The lottery's seed is
made once, when a pre-queue is first scheduled, and never changes: its
SHA-256 is published at once (the commitment), the seed itself from
`opens_at` on, and each pre-queued place's rank is the order of
HMAC-SHA256(seed, "<concert_id>:<user_id>").
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import hmac
import itertools
import math
import secrets
from dataclasses import dataclass, replace
from typing import Any

from frontrow.errors import invalid

MODES = ("fifo", "random", "passthrough", "reject")
# A proof of work is paid by buyers' phones and bots alike; bots solve
# natively (~5 M hashes/s a core), a slow phone runs the page's solver at
# ~0.17 M/s. A challenge lives ten times a slow phone's mean solving time
# (one phone in ~20,000 runs out), within 30 s to 2 minutes; the difficulty
# stops where that no longer fits in 2 minutes (README, "Proof of work").
PHONE_HASHES_PER_S = 170_000
MAX_POW_BITS = 21
CHALLENGE_LIFE_MIN_S, CHALLENGE_LIFE_MAX_S = 30, 120
PROOF_MAX = 200  # a Proof-Of-Work header: a challenge (64) ':' a nonce (64), with room
FIELDS = ("prequeue_from", "opens_at", "mode", "pow_bits")
# A pre-queued place scores the first 52 bits of its key (exact in a double);
# places taken after the opening score LATE + their arrival in µs, so they
# sort behind every pre-queued one. The rest of the key is the place's token
# id, so places with equal first bits still sort by the whole key.
SCORE_HEX = 13
LATE = 2**52


@dataclass(frozen=True, slots=True)
class Sale:
    prequeue_from: dt.datetime | None = None
    opens_at: dt.datetime | None = None
    mode: str = "fifo"
    pow_bits: int = 0
    seed: str | None = None  # 64 hex; secret until opens_at

    @property
    def commitment(self) -> str | None:
        return hashlib.sha256(bytes.fromhex(self.seed)).hexdigest() if self.seed else None

    @property
    def has_lottery(self) -> bool:
        return self.prequeue_from is not None and self.seed is not None

    def opened(self, now: dt.datetime | None = None) -> bool:
        return self.opens_at is None or (now or dt.datetime.now(dt.UTC)) >= self.opens_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "prequeue_from": iso(self.prequeue_from),
            "opens_at": iso(self.opens_at),
            "mode": self.mode,
            "pow_bits": self.pow_bits,
        }


# Both run on every poll with the sale's opening (uncached, iso costs ~20
# times the lookup: python -m bench.pollpath); a sale has a handful of
# datetimes, and a datetime never changes.
@functools.lru_cache(maxsize=4096)
def iso(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)  # SQLite's are naive UTC
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def iso_of_ms(ms: int) -> str | None:
    """The ISO time of an epoch in ms as the rules in Redis keep it (0 = none)."""
    return iso(dt.datetime.fromtimestamp(ms / 1000, dt.UTC)) if ms else None


@functools.lru_cache(maxsize=4096)
def epoch_ms(when: dt.datetime | None) -> int:
    return int(when.timestamp() * 1000) if when else 0


def lottery_key(seed: str, concert_id: int, user_id: str) -> str:
    """HMAC-SHA256(seed bytes, "<concert_id>:<user_id>") as lowercase hex."""
    message = f"{concert_id}:{user_id}".encode()
    return hmac.new(bytes.fromhex(seed), message, hashlib.sha256).hexdigest()


def place_of(key: str) -> tuple[int, str]:
    """(score in the waiting line, token id) of a pre-queued place with this key."""
    return int(key[:SCORE_HEX], 16), "p_" + key[SCORE_HEX:]


def new_challenge(bits: int) -> str:
    """A proof-of-work challenge that carries the difficulty it was made for
    (two digits, then 22 random URL-safe characters): enter.lua refuses it
    when the concert asks for more bits by the time it is used."""
    return f"{bits:02d}{secrets.token_urlsafe(16)}"


def challenge_life_s(bits: int) -> int:
    """How long a challenge of `bits` lives: ten slow-phone mean solving times."""
    tenfold = math.ceil(10 * (1 << bits) / PHONE_HASHES_PER_S)
    return min(CHALLENGE_LIFE_MAX_S, max(CHALLENGE_LIFE_MIN_S, tenfold))


def proof_ok(challenge: str, nonce: str, bits: int) -> bool:
    """SHA-256 of "<challenge>:<nonce>" begins with `bits` zero bits."""
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - bits) == 0


def _time(name: str, value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.astimezone(dt.UTC)
    raise invalid(f"{name} must be an ISO time with an offset (2026-12-01T10:00:00Z) or null")


def changed(current: Sale, body: dict[str, Any]) -> Sale:
    """The sale after applying `body`'s fields (any of FIELDS) to `current`;
    422 naming the first bad field, and nothing is applied then."""
    changes: dict[str, Any] = {}
    for name in ("prequeue_from", "opens_at"):
        if name in body:
            changes[name] = _time(name, body[name])
    if "mode" in body:
        if body["mode"] not in MODES:
            raise invalid(f"mode must be one of {', '.join(MODES)}")
        changes["mode"] = body["mode"]
    if "pow_bits" in body:
        bits = body["pow_bits"]
        if type(bits) is not int or not 0 <= bits <= MAX_POW_BITS:
            raise invalid(f"pow_bits must be an integer from 0 to {MAX_POW_BITS}")
        changes["pow_bits"] = bits
    new = replace(current, **changes)
    if new.prequeue_from is not None:
        if new.opens_at is None or new.prequeue_from >= new.opens_at:
            raise invalid("prequeue_from must come before opens_at")
    # Whether the times may still move is Redis's to judge (lua/rules.lua),
    # atomically with the opening it records.
    if new.prequeue_from is not None and new.seed is None:
        new = replace(new, seed=secrets.token_hex(32))
    return new


def check_draw(
    lottery: dict[str, Any], keys: list[str], concert_id: int, user_id: str | None
) -> tuple[list[str], int | None]:
    """What is wrong with a published draw (empty when it holds), and the
    user's rank in it (None when not asked or not in it)."""
    problems = []
    seed, commitment = lottery.get("seed"), lottery.get("commitment")
    if not isinstance(seed, str) or len(seed) != 64:
        return [f"the seed is not published yet (opens_at {lottery.get('opens_at')})"], None
    if hashlib.sha256(bytes.fromhex(seed)).hexdigest() != commitment:
        problems.append("SHA-256(seed) is not the commitment: the seed was changed")
    if any(a >= b for a, b in itertools.pairwise(keys)):
        problems.append("the draw is not in ascending key order")
    if len(keys) != lottery.get("entries"):
        problems.append(f"the draw has {len(keys)} keys, the lottery says {lottery.get('entries')}")
    rank = None
    if user_id is not None:
        mine = lottery_key(seed, concert_id, user_id)
        position = bisect.bisect_left(keys, mine)
        if position < len(keys) and keys[position] == mine:
            rank = position + 1
    return problems, rank
