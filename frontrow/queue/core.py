"""Queue operations: each one Redis round trip through a Lua script."""

from __future__ import annotations

import datetime as dt
import math
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from frontrow import metrics, pace, ratelimit, rules
from frontrow.auth import QUEUE_TOKEN_LIFETIME_S, QueueClaims, new_token_id
from frontrow.catalog import Concert
from frontrow.config import Settings
from frontrow.errors import BACKEND_ERRORS, Problem, forbidden, unauthenticated
from frontrow.queue.batch import StatusBatcher
from frontrow.queue.pollrule import (
    POLL_MAX_MS,
    POLL_MIN_MS,
    WAIT_POLL_MAX_MS,
    default_rate,
    poll_after_ms,
    spread_ms,
)
from frontrow.rules import redis_value
from frontrow.sale import LATE, iso_of_ms, lottery_key, place_of
from frontrow.store import Store

DONE_KEEP_MS = 24 * 3600 * 1000
SWEEP_LIMIT = 1000
# However far the opening, a page asks again within a minute: an opening
# moved earlier, or a sale opened by hand, reaches it in time.
PREQUEUE_POLL_MAX_MS = 60_000


def ms(seconds: float) -> int:
    return int(seconds * 1000)


def iso_ms(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Place and Line are built on every poll: plain slotted classes, since a
# frozen dataclass's __init__ costs a setattr call per field.
@dataclass(slots=True)
class Place:
    status: str
    rank: int | None
    eta_s: int | None
    poll_after_ms: int
    expires_at: str | None
    sold_out: bool
    prequeue: bool = False
    opens_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rank": self.rank,
            "eta_s": self.eta_s,
            "poll_after_ms": self.poll_after_ms,
            "expires_at": self.expires_at,
            "sold_out": self.sold_out,
            "prequeue": self.prequeue,
            "opens_at": self.opens_at,
        }


@dataclass(slots=True)
class Line:
    """What a status or enter call says of the whole line, read with the place."""

    rate: str  # observed admissions per second ('' before the first ticks)
    sold_out: str  # '1' when nothing is left to sell
    now_ms: int  # Redis's clock
    waiting: int
    mode: str  # the rules in force (frontrow/rules.py)
    opens_ms: int  # the opening (ms, 0 = none)


def poll_body(place: Place, concert_id: int) -> dict[str, Any]:
    body = place.as_dict()
    body["concert_id"] = concert_id
    return body


def place(settings: Settings, token_id: str, state: str, rank: int, ms_: int, line: Line) -> Place:
    """The answer for a place; `ms_` is what Redis said beside its state:
    the poll interval of a waiting place, the expiry of an active session."""
    now_ms = line.now_ms
    opens_ms = line.opens_ms
    opens_at = iso_of_ms(opens_ms)
    sold_out = line.sold_out == "1"
    if state == "WAITING" and now_ms < opens_ms:
        # pre-queued: unranked until the draw; back just after the opening
        back_ms = opens_ms - now_ms + spread_ms(settings, token_id)
        return Place(
            state, None, None, min(back_ms, PREQUEUE_POLL_MAX_MS), None, False, True, opens_at
        )
    if state == "WAITING" and sold_out:
        # nobody is admitted any more: no estimate, and no reason to ask often
        return Place(state, rank, None, POLL_MAX_MS, None, True, False, opens_at)
    if state == "WAITING":
        admit_rate = float(line.rate) if line.rate else default_rate(settings)
        shown: int | None = rank
        if line.mode == "random":
            # every draw is among all who wait: the median place is the estimate
            shown, rank = None, max(1, line.waiting // 2)
        eta = math.ceil(rank / admit_rate) if admit_rate > 0 else None
        return Place(state, shown, eta, ms_, None, False, False, opens_at)
    if state == "ACTIVE":
        return Place(
            state,
            0,
            0,
            poll_after_ms(state, ms_, now_ms),
            iso_ms(ms_),
            sold_out,
            False,
            opens_at,
        )
    return Place(
        state, None, None, poll_after_ms(state, 0, now_ms), None, sold_out, False, opens_at
    )


ENTER_REFUSALS = {
    "POW_REQUIRED": (
        428,
        "PROOF_OF_WORK_REQUIRED",
        "entering needs a proof of work (Proof-Of-Work header)",
    ),
    "POW_INVALID": (
        403,
        "PROOF_OF_WORK_INVALID",
        "the proof of work is wrong, spent, expired or not yours",
    ),
}


def enter_call(
    store: Store,
    user_id: str,
    concert_id: int,
    seed: str = "",
    proof: str = "missing",
    challenge: str = "",
    token_id: str | None = None,
    counted: Sequence[tuple[str, int]] = (),
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of enter.lua for this user (bench.Queue fills a
    line with it too); `seed` is the lottery's, when it is known; `counted`
    the rate limits the attempt counts against (ratelimit.counters), in the
    script's own call."""
    s = store.settings
    k = store.keys(concert_id)
    pre_token, pre_score, key = "", 0, ""
    if seed:
        key = lottery_key(seed, concert_id, user_id)
        pre_score, pre_token = place_of(key)
    keys = [k.wait, k.seen, k.users, k.active, k.cfg, k.stats, k.cap, k.draw, k.calm]
    # not counted: any key of the concert's slot (a cluster checks it), untouched at limit 0
    (user_rate, per_user), (address_rate, per_address) = counted or ((k.calm, 0), (k.calm, 0))
    return [*keys, k.pow(challenge), user_rate, address_rate], [
        user_id,
        token_id or new_token_id(),
        ms(s.abandon_after_s),
        pre_token,
        pre_score,
        key,
        proof,
        challenge_bits(challenge),
        ms(s.session_ttl_s),
        ms(s.session_max_s),
        s.admit_batch,
        ms(s.admit_interval_s),
        s.max_active,
        ms(s.prequeue_spread_s),
        LATE,
        default_rate(s),
        POLL_MIN_MS,
        WAIT_POLL_MAX_MS,
        ms(s.rate_window_s),
        per_user,
        per_address,
    ]


def challenge_bits(challenge: str) -> int:
    """The difficulty a challenge was made for: its first two digits (sale.new_challenge)."""
    return int(challenge[:2]) if challenge[:2].isdigit() else 0


async def enter(
    store: Store,
    user_id: str,
    concert_id: int,
    proof: str = "missing",
    challenge: str = "",
    counted: Sequence[tuple[str, int]] = (),
) -> tuple[bool, str, Place]:
    """Take (or get back) this user's place; returns (created, queue token, place).

    `proof` says what the Proof-Of-Work header held ('missing', 'bad', or
    'ok' for a hash that holds for its challenge's bits: the challenge is
    then checked against Redis and spent, and its bits against the rules).
    `counted`: the rate limits (ratelimit.counters) the attempt counts
    against in the same call; past one it is 429."""
    seed = store.seeds.get(concert_id, "")
    keys, args = enter_call(store, user_id, concert_id, seed, proof, challenge, counted=counted)
    reply = await rules.call(store, concert_id, store.scripts.enter, keys, args)
    if reply[0] == "NEED_SEED":  # a pre-queue this process has not seen yet
        seed = await rules.seed(store, concert_id)
        # counted by the first call already
        keys, args = enter_call(store, user_id, concert_id, seed, proof, challenge)
        reply = await store.scripts.enter(keys=keys, args=args)
    if reply[0] == "RATE":
        raise ratelimit.refuse(store, concert_id, "enter", user_id, int(reply[1]))
    outcome, token_id, rank, expires, rate, sold_out, now_ms, waiting, poll = reply[:9]
    mode, prequeue_ms, opens_ms = reply[9], int(reply[10]), int(reply[11])
    score, born_ms = int(reply[12]), int(reply[13])
    times = {"prequeue_from": iso_of_ms(prequeue_ms), "opens_at": iso_of_ms(opens_ms)}
    if outcome == "CLOSED":
        raise Problem(409, "QUEUE_CLOSED", f"concert {concert_id} is not on sale", extra=times)
    if outcome == "EARLY":
        first = times["prequeue_from"] or times["opens_at"]
        raise Problem(409, "QUEUE_CLOSED", f"the queue opens at {first}", extra=times)
    if outcome == "SOLD_OUT":
        raise Problem(
            409,
            "QUEUE_CLOSED",
            f"concert {concert_id} is sold out",
            extra={"sold_out": True, **times},
        )
    if outcome in ENTER_REFUSALS:
        raise Problem(*ENTER_REFUSALS[outcome])
    state = "ACTIVE" if outcome in ("ACTIVE", "IN") else "WAITING"
    token = store.tokens.queue_token(user_id, concert_id, token_id, born_ms, score)
    line = Line(rate, sold_out, int(now_ms), int(waiting), mode, opens_ms)
    created = outcome in ("NEW", "PRE", "IN")
    ms_ = expires if state == "ACTIVE" else poll
    return created, token, place(store.settings, token_id, state, rank, ms_, line)


_batchers: weakref.WeakKeyDictionary[Store, StatusBatcher] = weakref.WeakKeyDictionary()


async def status(store: Store, claims: QueueClaims) -> Place:
    """The token's state; marks it present and slides an active session."""
    batcher = _batchers.get(store)
    if batcher is None:
        batcher = _batchers[store] = StatusBatcher(store)
    state, rank, expires, rate, sold_out, now_ms, waiting, mode, opens_ms = await batcher.status(
        claims
    )
    line = Line(rate, sold_out, now_ms, waiting, mode, opens_ms)
    return place(store.settings, claims.token_id, state, rank, expires, line)


async def require_active(
    store: Store, claims: QueueClaims, concert_id: int, or_done: bool = False
) -> Place:
    """Let a booking request through only on an ACTIVE token of this concert
    (or a DONE one, with `or_done`: a buyer who paid may still let go of a seat)."""
    if claims.concert_id != concert_id:
        raise forbidden("this queue token is for another concert")
    current = await status(store, claims)
    if current.status != "ACTIVE" and not (or_done and current.status == "DONE"):
        raise unauthenticated(
            f"the queue token is {current.status}, not ACTIVE", code=f"TOKEN_{current.status}"
        )
    return current


# the keys of a user's holds to give up with the place, from their ids:
# (hold id, seat lock key, its section's held seats key, seat)
HoldKeys = Callable[[list[str]], Awaitable[list[tuple[str, str, str, int]]]]


async def leave(store: Store, claims: QueueClaims, hold_keys: HoldKeys | None = None) -> bool:
    """Give up the place or session and release the user's live holds in the
    concert (found by leave.lua, their keys by `hold_keys`: without it they
    simply run out, as does a hold taken between the two calls)."""
    k = store.keys(claims.concert_id)
    keys = [k.wait, k.seen, k.active, k.cap, k.users, k.uholds(claims.user_id)]
    args: list[str | int] = [claims.token_id, claims.user_id]
    ask = "ask" if hold_keys else "given"
    reply = await store.scripts.leave(keys=[*keys, k.stats], args=[*args, ask])
    if isinstance(reply, list) and hold_keys is not None:  # the user holds seats
        args.append("given")
        for hold_id, lock, held, seat_no in await hold_keys([str(h) for h in reply[0::2]]):
            keys += [lock, held]
            args += [hold_id, seat_no]
        reply = await store.scripts.leave(keys=[*keys, k.stats], args=args)
    return bool(reply)


@dataclass(frozen=True, slots=True)
class Tick:
    admitted: int  # -1: another admitter holds this interval's lease
    abandoned: int
    next_in_s: float
    opened: bool = False  # this tick opened the sale (once per sale)
    frontier: int = -1  # how far admission has come in the line (admit.lua), -1: not yet


async def admit(
    store: Store,
    concert_id: int,
    owner: str,
    p99: tuple[float, int] = (0.0, 0),
    free_seats: int | None = None,
) -> Tick:
    """Run one admission tick for a concert, if this interval's lease is free.
    `p99` is the booking p99 (ms) and its report's time (pace.observed): with
    a target set, admit.lua moves k by it. `free_seats`: seats of the dates on
    sale neither sold nor held (None: not known): at 0 nobody is let in, and
    with FRONTROW_ADMIT_WITHIN_SEATS no more than these less the live
    sessions. Where Redis lost the rules, they are restored from the
    database first: nobody is admitted on defaults."""
    s = store.settings
    k = store.keys(concert_id)
    admitted, abandoned, next_ms, opened, frontier = await rules.call(
        store,
        concert_id,
        store.scripts.admit,
        keys=[k.tick, k.wait, k.seen, k.active, k.cap, k.cfg, k.stats, k.fresh],
        args=[
            s.admit_batch,
            ms(s.admit_interval_s),
            s.max_active,
            ms(s.session_ttl_s),
            ms(s.session_max_s),
            ms(s.abandon_after_s),
            owner,
            s.admit_target_p99_ms,
            p99[0],
            p99[1],
            s.admit_batch_min,
            s.admit_batch_max,
            -1 if free_seats is None else free_seats,
            1 if s.admit_within_seats else 0,
        ],
    )
    return Tick(admitted, abandoned, next_ms / 1000, opened == 1, frontier)


async def sweep(store: Store, concert_id: int) -> tuple[int, int]:
    """Remove ended sessions and abandoned places; returns (expired, abandoned)."""
    s = store.settings
    k = store.keys(concert_id)
    expired_total = abandoned_total = 0
    while True:
        expired, abandoned, stale = await store.scripts.sweep(
            keys=[k.active, k.cap, k.wait, k.seen, k.done, k.stats, k.users, k.back],
            args=[ms(s.abandon_after_s), DONE_KEEP_MS, SWEEP_LIMIT, QUEUE_TOKEN_LIFETIME_S * 1000],
        )
        expired_total += expired
        abandoned_total += abandoned
        if expired < SWEEP_LIMIT and stale < SWEEP_LIMIT:
            return expired_total, abandoned_total


async def overview(store: Store, concert_id: int) -> dict[str, Any]:
    """The queue's live numbers, settings and sale, as the admin API shows them:
    what Redis holds, which every process decides by."""
    s = store.settings
    k = store.keys(concert_id)
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.zcard(k.wait)
        pipe.zcount(k.active, f"({now_ms}", "+inf")
        pipe.zcount(k.fresh, now_ms - ms(s.session_ttl_s), "+inf")
        pipe.hgetall(k.stats)
        pipe.hgetall(k.cfg)
        waiting, active, not_back, stats, cfg = await pipe.execute()
    if "rules" not in cfg:
        await rules.restore(store, concert_id)
        cfg = await store.redis.hgetall(k.cfg)
    interval_s = float(cfg.get("admit_interval_s", s.admit_interval_s))
    batch = int(cfg.get("admit_batch", s.admit_batch))
    target = int(cfg.get("admit_target_p99_ms", s.admit_target_p99_ms))
    if target > 0:  # k is the admitter's own (admit.lua), not the one set
        batch = int(stats.get("auto_batch", max(s.admit_batch_min, min(s.admit_batch_max, batch))))
    view = {
        "waiting": waiting,
        "active": active,
        "not_back": not_back,
        "admitted_total": int(stats.get("admitted_total", 0)),
        "entered_total": int(stats.get("entered_total", 0)),
        # error answers to this concert's requests (pace.py counts them)
        "answers": {kind: int(stats.get(f, 0)) for kind, f in pace.ANSWER_FIELDS.items()},
        "abandoned_total": int(stats.get("abandoned_total", 0)),
        "expired_total": int(stats.get("expired_total", 0)),
        "admit_batch": batch,
        "admit_interval_s": interval_s,
        "admit_target_p99_ms": target,
        "max_active": int(cfg.get("max_active", s.max_active)),
        "open": cfg.get("open", cfg.get("on_sale")) == "1",
        "admit_rate_per_s": float(stats.get("rate", batch / interval_s)),
        "sold_out": stats.get("sold_out") == "1",
        **rules.sale_view(cfg),
        "opened_at": iso_of_ms(int(stats.get("opened_ms", 0))),
    }
    view["state"] = sale_state(
        view,
        now_ms,
        int(cfg.get("opens_ms", 0)),
        int(cfg.get("prequeue_ms", 0)),
        int(stats.get("opened_ms", 0)),
    )
    return view


SALE_STATES = ("scheduled", "prequeue", "opening", "open", "paused", "closed", "sold_out")


def sale_state(
    view: dict[str, Any], now_ms: int, opens_ms: int, prequeue_ms: int, opened_ms: int
) -> str:
    """What the sale is now, in one word for the console's first tile:
    sold_out; closed (not open, or mode reject: nobody new); scheduled
    (before the opening, no pre-queue yet); prequeue; opening (the opening
    has passed, the draw of the pre-queue not made yet); paused (k = 0, no
    target); open."""
    if view["sold_out"]:
        return "sold_out"
    if not view["open"] or view["mode"] == "reject":
        return "closed"
    if opens_ms and now_ms < opens_ms:
        return "prequeue" if prequeue_ms and now_ms >= prequeue_ms else "scheduled"
    if opens_ms and prequeue_ms and not opened_ms:
        return "opening"
    if view["admit_batch"] == 0 and not view["admit_target_p99_ms"]:
        return "paused"
    return "open"


async def sales(store: Store, concerts: list[Any]) -> dict[int, dict[str, Any]]:
    """Each concert's sale as Redis has it (sold_out; open and sale.FIELDS
    once its rules are there), for the public concert list.

    Best effort: the list must not fail with Redis, so a concert whose rules
    cannot be read now is left out and the caller shows the catalog's."""
    try:
        async with store.redis.pipeline(transaction=False) as pipe:
            for concert in concerts:
                pipe.hgetall(store.keys(concert.id).cfg)
                pipe.hget(store.keys(concert.id).stats, "sold_out")
            found = await pipe.execute()
    except BACKEND_ERRORS:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for i, concert in enumerate(concerts):
        cfg, sold_out = found[2 * i], found[2 * i + 1]
        out[concert.id] = {"sold_out": sold_out == "1"}
        if "rules" in cfg:
            view = rules.sale_view(cfg)
            del view["commitment"]
            out[concert.id].update(open=cfg.get("open", cfg.get("on_sale")) == "1", **view)
    return out


async def configure(store: Store, concert_id: int, changes: dict[str, Any]) -> None:
    """Store live settings; every admitter reads them on its next tick."""
    mapping = {name: redis_value(name, value) for name, value in changes.items()}
    if mapping:
        await store.redis.hset(store.keys(concert_id).cfg, mapping=mapping)


@metrics.live
async def queue_families(store: Store, concerts: list[Concert]) -> list[Metric]:
    """Per-concert queue numbers and live settings, read from Redis at scrape time."""
    gauge, counter = metrics.concert_gauge, metrics.concert_counter
    waiting = gauge("frontrow_queue_waiting", "Tokens waiting in line")
    active = gauge("frontrow_queue_active", "Live active sessions")
    rate = gauge("frontrow_queue_admit_rate_per_second", "Observed admission rate")
    batch = gauge(
        "frontrow_queue_admit_batch", "Live admit batch (k), the admitter's own with a target"
    )
    target = gauge("frontrow_queue_admit_target_p99_ms", "Booking p99 target for k (0 = fixed k)")
    interval = gauge("frontrow_queue_admit_interval_seconds", "Live admit interval (n)")
    cap = gauge("frontrow_queue_max_active", "Live active-session cap (0 = none)")
    admitted = counter("frontrow_queue_admitted", "Tokens admitted")
    abandoned = counter("frontrow_queue_abandoned", "Waiting tokens dropped for not polling")
    expired = counter("frontrow_queue_expired", "Active sessions ended by their TTL")
    is_open = gauge("frontrow_queue_open", "1 when the queue takes entries")
    sold_out = gauge("frontrow_queue_sold_out", "1 once every upcoming date is sold out")
    entered = counter("frontrow_queue_entered", "Places taken in line (arrivals)")
    not_back = gauge(
        "frontrow_queue_not_back", "Admitted by a tick, their page not back yet to hear it"
    )
    answers = CounterMetricFamily(
        "frontrow_concert_answers",
        "A concert's error answers by kind (4xx: other than 429)",
        labels=["concert", "kind"],
    )
    p99 = GaugeMetricFamily(
        "frontrow_concert_p99_ms",
        "The worst app process's p99 of a concert's polls and payments (last 2 s)",
        labels=["concert", "group"],
    )
    state = GaugeMetricFamily(
        "frontrow_sale_state",
        "1 for what the sale is now (admin state)",
        labels=["concert", "state"],
    )
    for concert in concerts:
        label = [str(concert.id)]
        q = await overview(store, concert.id)
        waiting.add_metric(label, q["waiting"])
        active.add_metric(label, q["active"])
        rate.add_metric(label, q["admit_rate_per_s"])
        batch.add_metric(label, q["admit_batch"])
        target.add_metric(label, q["admit_target_p99_ms"])
        interval.add_metric(label, q["admit_interval_s"])
        cap.add_metric(label, q["max_active"])
        admitted.add_metric(label, q["admitted_total"])
        abandoned.add_metric(label, q["abandoned_total"])
        expired.add_metric(label, q["expired_total"])
        is_open.add_metric(label, int(q["open"]))
        sold_out.add_metric(label, int(q["sold_out"]))
        entered.add_metric(label, q["entered_total"])
        not_back.add_metric(label, q["not_back"])
        for kind, n in q["answers"].items():
            answers.add_metric([*label, kind], n)
        for group in ("poll", "payment"):
            p99.add_metric([*label, group], (await pace.observed(store, group, concert.id))[0])
        for name in SALE_STATES:
            state.add_metric([*label, name], int(q["state"] == name))
    return [
        *(waiting, active, rate, batch, target, interval, cap),
        *(admitted, abandoned, expired, is_open, sold_out, entered, state),
        *(not_back, answers, p99),
    ]
