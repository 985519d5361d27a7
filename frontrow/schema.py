"""PostgreSQL (or SQLite) tables: the durable catalog, sales and money."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
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
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("concert_id", Id, ForeignKey("concerts.id"), nullable=False),
    Column("date", Date, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("sold_out", Boolean, nullable=False, default=False),
    UniqueConstraint("concert_id", "date", name="schedules_concert_date"),
)

seats = Table(
    "seats",
    metadata,
    Column("schedule_id", Id, ForeignKey("schedules.id"), primary_key=True),
    Column("seat_no", Integer, primary_key=True, autoincrement=False),
    Column("price", BigInteger, nullable=False),
)
