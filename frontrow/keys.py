"""Every Redis key name, built in one place.

Each key of a concert carries the hash tag ``{c<id>}`` so that every Lua
script touches one cluster slot and concerts spread over the shards.
"""

from __future__ import annotations

from functools import lru_cache


class ConcertKeys:
    __slots__ = (
        "active",
        "back",
        "base",
        "bought",
        "calm",
        "cap",
        "cfg",
        "concert_id",
        "done",
        "draw",
        "fresh",
        "seen",
        "stats",
        "tick",
        "users",
        "wait",
    )

    def __init__(self, prefix: str, concert_id: int) -> None:
        self.concert_id = concert_id
        self.base = f"{prefix}:{{c{concert_id}}}"
        self.wait = self.base + ":wait"  # ZSET token -> entered_at (µs, Redis TIME)
        self.seen = self.base + ":seen"  # ZSET waiting token -> last poll (ms)
        self.users = self.base + ":users"  # HASH user -> token (one place per user)
        self.active = self.base + ":active"  # ZSET token -> session expiry (ms)
        self.cap = self.base + ":cap"  # HASH token -> absolute session deadline (ms)
        self.done = self.base + ":done"  # ZSET token -> done at (ms)
        self.cfg = self.base + ":cfg"  # HASH live settings from the admin API
        self.tick = self.base + ":tick"  # admission lease, one tick per interval
        self.stats = self.base + ":stats"  # HASH counters and observed admission rate
        self.draw = self.base + ":draw"  # ZSET lottery key (hex) -> 0, the pre-queued places
        self.bought = self.base + ":bought"  # HASH user -> seats bought (the ticket limit)
        self.calm = self.base + ":calm"  # STRING places let in at once this interval, PX interval
        # ZSET token -> when its place or session was given back from the token
        # itself after Redis lost it (once a token: a place that ends after that ends)
        self.back = self.base + ":back"
        # ZSET token -> admitted at (ms): admitted by a tick, not yet back to
        # hear it (the console's "admitted, not back"; admit.lua, status.lua)
        self.fresh = self.base + ":fresh"

    def pow(self, challenge: str) -> str:
        """STRING user id a proof-of-work challenge was given to, PX its life."""
        return f"{self.base}:pow:{challenge}"

    def hold(self, schedule_id: int, seat_no: int) -> str:
        """STRING hold_id|user_id with PX = hold ttl: the seat's lock."""
        return f"{self.hold_prefix(schedule_id)}{seat_no}"

    def hold_prefix(self, schedule_id: int) -> str:
        """The seat locks of a date without the seat (best.lua picks the seats)."""
        return f"{self.base}:hold:{schedule_id}:"

    def holds(self, schedule_id: int, section: str) -> str:
        """ZSET seat -> hold expiry (ms): the held seats of one section of a
        date, so a section's live holds are one ZCOUNT and its map reads its own."""
        return f"{self.base}:holds:{schedule_id}:{section}"

    def uholds(self, user_id: str) -> str:
        """ZSET hold_id -> hold expiry (ms): a user's holds, for the per-user limit."""
        return f"{self.base}:uholds:{user_id}"

    def pins(self, user_id: str) -> str:
        """HASH hold_id -> payments in flight that pinned it: the last to fail
        gives the hold back its own deadline (its score in uholds)."""
        return f"{self.base}:pins:{user_id}"

    def claims(self, user_id: str) -> str:
        """HASH seat lock -> deadline of the user's first hold of that seat:
        a claim on a seat lasts one hold lifetime, however often it is retaken."""
        return f"{self.base}:claims:{user_id}"

    def rate(self, action: str, who: str) -> str:
        """STRING attempts of one user or address in the current rate window."""
        return f"{self.base}:rl:{action}:{who}"

    def best_skip(self, schedule_id: int) -> str:
        """HASH '<rows id>:<n>' -> where best.lua's walk of those rows for n
        seats starts: the rows before it have no n unsold seats side by side."""
        return f"{self.base}:bestskip:{schedule_id}"

    def held(self, schedule_id: int) -> str:
        """BITMAP of seats of a date that may be held (bit 0 = built): every
        live hold's seat is set; a hold released, or let go as its holder
        left or paid for others, is cleared by the next walk of best.lua, one
        that ran out within a second (best.lua `HELD_REBUILD_MS`)."""
        return f"{self.base}:heldbits:{schedule_id}"

    def taken(self, schedule_id: int) -> str:
        """BITMAP sold or maybe held: best.lua's scratch, written by its own call."""
        return f"{self.base}:takenbits:{schedule_id}"

    def sold(self, schedule_id: int) -> str:
        """BITMAP of a date's sold seats (bit n = seat n; bit 0 = loaded from the
        database): 6 KB for 50,000 seats, and a section is one GETRANGE."""
        return f"{self.base}:soldbits:{schedule_id}"


def catalog_announced(prefix: str) -> str:
    """STRING a counter bumped after every committed catalog change (rules.announce)."""
    return f"{prefix}:{{global}}:catalog"


def catalog_seen(prefix: str) -> str:
    """HASH process -> 'counter:at_ms': the announcement each process has loaded."""
    return f"{prefix}:{{global}}:catalog_seen"


def address_rate(prefix: str, action: str, address: str) -> str:
    """STRING attempts of one address in the current window, for actions that
    belong to no concert (demo logins, failed admin tokens)."""
    return f"{prefix}:{{global}}:rl:{action}:{address}"


@lru_cache(maxsize=4096)
def concert_keys(prefix: str, concert_id: int) -> ConcertKeys:
    return ConcertKeys(prefix, concert_id)
