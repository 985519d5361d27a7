"""PostgreSQL (or SQLite) tables: the durable catalog, sales and money."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

concerts = Table(
    "concerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("title", String(200), nullable=False),
    Column("venue", String(200), nullable=False),
    Column("on_sale", Boolean, nullable=False, default=True),
    # The venue's IANA time zone: dates and show times are shown in it, so a
    # buyer abroad and the ticket agree on the day.
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    # The sale event (frontrow/queue/sale.py): pre-queue window, opening,
    # queueing mode, proof-of-work bits, and the lottery's secret seed (hex;
    # made once when a pre-queue is first scheduled, published at opens_at).
    Column("prequeue_from", DateTime(timezone=True), nullable=True),
    Column("opens_at", DateTime(timezone=True), nullable=True),
    Column("mode", String(16), nullable=False, server_default="fifo"),
    Column("pow_bits", Integer, nullable=False, server_default="0"),
    Column("lottery_seed", String(64), nullable=True),
    # The live settings an operator set (JSON: admit_batch, open, ...): the
    # record that an empty Redis gets them back from (frontrow/rules.py).
    Column("queue_settings", String(1000), nullable=True),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("concert_id", Id, ForeignKey("concerts.id"), nullable=False),
    Column("date", Date, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("sold_out", Boolean, nullable=False, default=False),
    # Seats unsold at the last import, 0 once the date is found full
    # (holds.mark_sold_out). Payments leave this row alone: a row that every
    # sale of a date updates is a lock they all queue on.
    Column("seats_left", Integer, nullable=False, server_default="0"),
    UniqueConstraint("concert_id", "date", name="schedules_concert_date"),
)

# seat_no is the seat's id within its date, numbered in the venue's order
# (section, row, seat); section, seat_row and number are what the ticket says.
seats = Table(
    "seats",
    metadata,
    Column("schedule_id", Id, ForeignKey("schedules.id"), primary_key=True),
    Column("seat_no", Integer, primary_key=True, autoincrement=False),
    Column("price", BigInteger, nullable=False),
    Column("section", String(32), nullable=False, server_default="GA"),
    Column("seat_row", String(16), nullable=False, server_default="1"),
    Column("number", Integer, nullable=False, server_default="0"),
)

# Where each section of a date lies in a picture of the venue, the stage along
# its top edge: a box in percent of the picture's width and height. Optional
# (a date without one is shown as a list of sections).
section_plans = Table(
    "section_plans",
    metadata,
    Column("schedule_id", Id, ForeignKey("schedules.id"), primary_key=True),
    Column("section", String(32), primary_key=True),
    Column("x", Integer, nullable=False),
    Column("y", Integer, nullable=False),
    Column("w", Integer, nullable=False),
    Column("h", Integer, nullable=False),
)

# Bumped by every change of the catalog (import, demo seed), so each process
# rereads the catalog only when it changed, by a one-row query.
catalog_version = Table(
    "catalog_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

# Every change made through the admin API (the console or curl): when, what,
# old -> new (JSON text), from which address. Written in the transaction of
# the change itself, so no change goes unrecorded.
REASON_MAX = 200  # the reason an operator may give with a change

admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("concert_id", Id, nullable=False),
    Column("field", String(32), nullable=False),
    Column("old", String(200), nullable=False),
    Column("new", String(200), nullable=False),
    Column("address", String(64), nullable=False),
    # who made the change (the name of their admin token) and, if they said, why
    Column("operator", String(32), nullable=True),
    Column("reason", String(REASON_MAX), nullable=True),
    Index("admin_audit_concert", "concert_id", "id"),
)

# How far admission has come in each concert's line (lua/admit.lua, the
# admission frontier), kept by the admitter after its ticks: a Redis that
# comes back empty learns from it which returning tokens were admitted.
queue_progress = Table(
    "queue_progress",
    metadata,
    Column("concert_id", Id, primary_key=True, autoincrement=False),
    Column("admitted_upto", BigInteger, nullable=False),
)

wallets = Table(
    "wallets",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    CheckConstraint("balance >= 0", name="wallets_balance_not_negative"),
)

# Append-only: every change of a balance is one row, so a wallet's balance
# always equals the sum of its ledger.
ledger = Table(
    "ledger",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # charge | payment
    Column("amount", BigInteger, nullable=False),  # signed: + charge, - payment
    Column("balance_after", BigInteger, nullable=False),
    Column("idempotency_key", String(64)),
    Column("receipt_id", String(40)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "kind", "idempotency_key", name="ledger_idempotency"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("concert_id", Id, ForeignKey("concerts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=False),
    Column("idempotency_key", String(64)),
    Column("request_hash", String(64), nullable=False),
    # the queue token that paid: a payment Redis never heard of (it was away
    # at the commit) is finished by the sweeper with it (payments.finish_recent)
    Column("token_id", String(64), nullable=True),
    UniqueConstraint("user_id", "idempotency_key", name="receipts_idempotency"),
    Index("receipts_paid_at", "paid_at"),
)

# The unique (schedule, seat) constraint is the last guard against selling
# a seat twice, whatever Redis says.
reservations = Table(
    "reservations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("schedule_id", Id, ForeignKey("schedules.id"), nullable=False),
    Column("seat_no", Integer, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("receipt_id", String(40), ForeignKey("receipts.id"), nullable=False, index=True),
    Column("price", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("schedule_id", "seat_no", name="reservations_one_per_seat"),
)

# Seats each buyer bought per concert, kept by the payment's own statement:
# the row is locked by the upsert, so no two payments of one buyer pass the
# ticket limit together; the limit in force is written with the count, and
# the CHECK undoes the whole payment that would pass it.
buyer_tickets = Table(
    "buyer_tickets",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("concert_id", Id, primary_key=True, autoincrement=False),
    Column("seats", Integer, nullable=False),
    Column("ticket_limit", Integer, nullable=False),  # 0 = none
    CheckConstraint("ticket_limit = 0 OR seats <= ticket_limit", name="buyer_tickets_within_limit"),
)
