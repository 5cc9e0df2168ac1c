"""The ledger's tables (DESIGN §5), SQLAlchemy Core, portable across SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Table as _Table

metadata = MetaData()


def Table(name: str, *args: object) -> _Table:
    return _Table(name, metadata, *args)


TS = DateTime(timezone=True)

schema_migrations = Table(
    "schema_migrations",
    Column("version", Integer, primary_key=True),
    Column("applied_at", TS, nullable=False),
)

runs = Table(
    "runs",
    Column("run_id", String(64), primary_key=True),
    Column("flow", String(64), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("status", String(16), nullable=False),
    Column("counts", Text, nullable=False, default="{}"),
)

events = Table(
    "events",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(128), nullable=False),
    Column("event_id", String(256), nullable=False),
    Column("source_ref", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("learner_id", String(36)),
    Column("activity_id", String(128)),
    Column("voids_key", String(400)),
    Column("body", Text, nullable=False),
    Column("kafka_partition", Integer),
    Column("kafka_offset", Integer),
    Column("ingested_at", TS, nullable=False),
    UniqueConstraint("source", "event_id", name="uq_events_source_event"),
    Index("ix_events_pair", "learner_id", "activity_id"),
    Index("ix_events_voids", "voids_key"),
)

learners = Table(
    "learners",
    Column("learner_id", String(36), primary_key=True),
    Column("profile", Text, nullable=False),
    Column("updated_at", TS, nullable=False),
)

learner_ids = Table(
    "learner_ids",
    Column("kind", String(16), nullable=False),
    Column("value", String(400), nullable=False),
    Column("learner_id", String(36), nullable=False),
    PrimaryKeyConstraint("kind", "value"),
    Index("ix_learner_ids_learner", "learner_id"),
)

credits = Table(
    "credits",
    Column("record_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("learner_id", String(36), nullable=False),
    Column("activity_id", String(128), nullable=False),
    Column("credit_type", String(32), nullable=False),
    Column("amount", Numeric(8, 2), nullable=False),
    Column("completed_on", Date, nullable=False),
    Column("record", Text, nullable=False),
    Column("reconciled_at", TS, nullable=False),
    PrimaryKeyConstraint("record_id", "version"),
    Index("ix_credits_learner", "learner_id"),
)

outbox = Table(
    "outbox",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("published_at", TS),
    UniqueConstraint("record_id", "version", name="uq_outbox_record_version"),
    Index("ix_outbox_unpublished", "published_at"),
)

deliveries = Table(
    "deliveries",
    Column("record_id", String(36), nullable=False),
    Column("registry", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("receipt", String(128)),
    Column("updated_at", TS, nullable=False),
    PrimaryKeyConstraint("record_id", "registry", "version"),
    Index("ix_deliveries_queue", "registry", "state", "updated_at", "record_id"),
)

checkpoints = Table(
    "checkpoints",
    Column("source", String(128), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("updated_at", TS, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    Column("dead_letter_id", String(36), primary_key=True),
    Column("stage", String(16), nullable=False),
    Column("source", String(128), nullable=False),
    Column("source_ref", Text, nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_seen", TS, nullable=False),
    Column("last_seen", TS, nullable=False),
    Column("registry", String(128)),
    Column("published_at", TS),
    Column("resolved_at", TS),
    Index("ix_dead_letters_reason", "reason_code"),
)

# The nightly registry diff of one run: counts per finding and the record ids behind them (JSON objects).
registry_diffs = Table(
    "registry_diffs",
    Column("run_id", String(64), nullable=False),
    Column("registry", String(128), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("counts", Text, nullable=False),
    Column("record_ids", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "registry"),
)

# Who holds the PostgreSQL run lock (ledger/run_lock.py): written by the holder of the advisory lock, keyed by
# the backend pid holding it. Created by the lock itself too, as the lock is taken before any migration runs.
run_lock_holders = Table(
    "run_lock_holders",
    Column("lock_key", BigInteger, primary_key=True),
    Column("backend_pid", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("flow", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", String(32), nullable=False),
)

# What the ledger knows of each Kafka partition it writes or reads, to notice a broker that forgot it
# (`pipeline.stages.broker_loss`): the end of what it produced there (acknowledged) and of what it reconciled.
kafka_watermarks = Table(
    "kafka_watermarks",
    Column("topic", String(249), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("produced_end", Integer, nullable=False, default=0),
    Column("reconciled_end", Integer, nullable=False, default=0),
    Column("updated_at", TS, nullable=False),
    PrimaryKeyConstraint("topic", "kafka_partition"),
)

# The cursor history of the pull: each page acknowledged on the attendance topic, the cursor it was read from
# (NULL: the source's beginning) and where its events ended per partition (JSON {partition: end}). A broker that
# lost events rewinds a source to the first page not wholly reconciled; pages wholly reconciled are pruned.
pulled_pages = Table(
    "pulled_pages",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(128), nullable=False),
    Column("from_cursor", Text),
    Column("ends", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_pulled_pages_source", "source", "id"),
)

# At-risk notices the employer HR endpoints received (`pipeline.stages.at_risk_notices`), by idempotency key: a rerun
# the same day finds them here and sends nothing again.
hr_notices = Table(
    "hr_notices",
    Column("registry", String(128), nullable=False),
    Column("notice_id", String(400), nullable=False),
    Column("receipt_id", String(128), nullable=False),
    Column("sent_at", TS, nullable=False),
    PrimaryKeyConstraint("registry", "notice_id"),
)
