"""The ledger: the durable record of events, learners, credit versions, outbox, deliveries and dead letters.

Every write here is idempotent (unique keys, upserts), so a rerun after a crash converges (DESIGN §1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Subquery,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
)

from ledger import tables as t
from ledger.bulk import insert_new
from reconcile.identity import IdentityKey
from reconcile.merge import CreditState
from reconcile.vocabulary import AWARDED

CHUNK = 500
T = TypeVar("T")

Pair = tuple[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Slices of at most `size` items, to keep every IN list within the databases' parameter limits."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_first(pairs: Iterable[tuple[str, T]]) -> Iterator[tuple[str, Sequence[T]]]:
    """Pairs as (first, chunk of seconds). SQLite answers a row-value `(a, b) IN (...)` list by scanning the
    whole table (quadratic over a nightly run), but `a = ? AND b IN (...)` by searching the (a, b) index."""
    seconds: dict[str, list[T]] = {}
    for first, second in set(pairs):
        seconds.setdefault(first, []).append(second)
    for first, values in seconds.items():
        for chunk in chunks(values):
            yield first, chunk


_EVENT_TIMES = ("occurred_at", "started_at", "ended_at")


def event_to_json(event: Mapping[str, Any]) -> str:
    return json.dumps({k: (v.isoformat() if k in _EVENT_TIMES and v else v) for k, v in event.items()})


def event_from_json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    for key in _EVENT_TIMES:
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    return data


def record_to_json(record: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            **record,
            "amount": str(record["amount"]),
            "completed_on": record["completed_on"].isoformat(),
            "reconciled_at": record["reconciled_at"].isoformat(),
        }
    )


def record_from_json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    data["amount"] = Decimal(data["amount"])
    data["completed_on"] = date.fromisoformat(data["completed_on"])
    data["reconciled_at"] = datetime.fromisoformat(data["reconciled_at"])
    return data


@dataclass(frozen=True)
class StoredEvent:
    event: Mapping[str, Any]
    learner_id: str | None
    activity_id: str | None
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Expectation:
    """What the ledger expects a registry to hold for one record: its latest version, and the state of that
    version's delivery to the registry (None when that version was never routed to it)."""

    record_id: str
    version: int
    status: str
    amount: Decimal
    completed_on: date
    delivery_state: str | None


def latest_credit_versions(*where: ColumnElement[bool]) -> tuple[Subquery, ColumnElement[bool]]:
    """The latest version of each credit record matching `where`, and the condition joining `credits` rows to
    it: `.join(*latest_credit_versions(...))` keeps only each record's latest version."""
    c = t.credits.c
    latest = select(c.record_id, func.max(c.version).label("version")).where(*where).group_by(c.record_id).subquery()
    return latest, (c.record_id == latest.c.record_id) & (c.version == latest.c.version)


def expectations_select(registry: str) -> Select[Any]:
    """Per record ever routed to `registry`: its latest version's status, amount, completion date, and the state
    of that version's delivery there (`state`, NULL when that version was never routed to it)."""
    c, d = t.credits.c, t.deliveries.c
    routed = select(d.record_id).where(d.registry == registry)
    return (
        select(c.record_id, c.version, c.status, c.amount, c.completed_on, d.state)
        .select_from(t.credits)
        .join(*latest_credit_versions(c.record_id.in_(routed)))
        .outerjoin(t.deliveries, (d.record_id == c.record_id) & (d.version == c.version) & (d.registry == registry))
    )


def expectation_of(row: Row[Any]) -> Expectation:
    """An `expectations_select` row as an Expectation."""
    return Expectation(
        row.record_id,
        row.version,
        row.status,
        Decimal(row.amount).quantize(Decimal("0.01")),
        row.completed_on,
        row.state,
    )


class Ledger:
    def __init__(self, url: str) -> None:
        self.url = url
        # Pre-ping: a pooled connection the server dropped (restart, failover) is replaced, not used and failed.
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine, "do_connect", _connect_patiently)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        """The database's dialect name: sqlite or postgresql."""
        return self.engine.dialect.name

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply the versioned migrations not yet applied; return the schema version."""
        from ledger.migrations import MIGRATIONS

        t.schema_migrations.create(self.engine, checkfirst=True)
        with self.engine.begin() as conn:
            applied = set(conn.scalars(select(t.schema_migrations.c.version)))
            for version, step in MIGRATIONS:
                if version not in applied:
                    step(conn)
                    conn.execute(insert(t.schema_migrations).values(version=version, applied_at=utcnow()))
            return max(v for v, _ in MIGRATIONS)

    def schema_version(self) -> int | None:
        """The schema version applied so far; None when the ledger was never migrated (connecting to find out)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(t.schema_migrations.name):
                return None
            return conn.scalar(select(func.max(t.schema_migrations.c.version)))

    # -- reads for reconciliation -------------------------------------------------------------------
    def known_event_keys(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        e = t.events.c
        with self.engine.connect() as conn:
            for source, event_ids in _by_first(keys):
                rows = conn.execute(
                    select(e.source, e.event_id).where((e.source == source) & e.event_id.in_(event_ids))
                )
                found.update((r.source, r.event_id) for r in rows)
        return found

    def identities(self, keys: Iterable[IdentityKey]) -> dict[IdentityKey, str]:
        known: dict[IdentityKey, str] = {}
        ids = t.learner_ids.c
        with self.engine.connect() as conn:
            for kind, values in _by_first(keys):
                rows = conn.execute(select(t.learner_ids).where((ids.kind == kind) & ids.value.in_(values)))
                known.update({(r.kind, r.value): r.learner_id for r in rows})
        return known

    def learner_keys(self, learner_ids: Iterable[str]) -> dict[IdentityKey, str]:
        """Every identity key the given learners hold (identity conflicts compare a learner's strong ids)."""
        known: dict[IdentityKey, str] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(set(learner_ids))):
                rows = conn.execute(select(t.learner_ids).where(t.learner_ids.c.learner_id.in_(chunk)))
                known.update({(r.kind, r.value): r.learner_id for r in rows})
        return known

    def event_pairs(self, event_keys: Iterable[str]) -> dict[str, Pair]:
        """(learner, activity) of stored events, by "source:event_id"."""
        wanted = [(source, event_id) for source, event_id in (k.split(":", 1) for k in event_keys)]
        pairs: dict[str, Pair] = {}
        e = t.events.c
        with self.engine.connect() as conn:
            for source, event_ids in _by_first(wanted):
                rows = conn.execute(
                    select(e.source, e.event_id, e.learner_id, e.activity_id)
                    .where((e.source == source) & e.event_id.in_(event_ids))
                    .where(e.learner_id.is_not(None))
                )
                pairs.update({f"{r.source}:{r.event_id}": (r.learner_id, r.activity_id) for r in rows})
        return pairs

    def voided_keys(self, conn: Connection, event_keys: Iterable[str]) -> set[str]:
        voided: set[str] = set()
        for chunk in chunks(list(set(event_keys))):
            voided.update(conn.scalars(select(t.events.c.voids_key).where(t.events.c.voids_key.in_(chunk))))
        return voided

    def held_pairs(self, reason_code: str) -> set[Pair]:
        """(learner, activity) of the stored events behind open reconcile dead letters of `reason_code`: the
        pairs whose credit is held back, to decide again when what held them (e.g. the mapping) may have changed."""
        d, e = t.dead_letters.c, t.events.c
        held = t.dead_letters.join(t.events, (e.source == d.source) & (e.source_ref == d.source_ref))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(e.learner_id, e.activity_id)
                .select_from(held)
                .where((d.stage == "reconcile") & (d.reason_code == reason_code) & d.resolved_at.is_(None))
                .where(e.learner_id.is_not(None) & e.activity_id.is_not(None))
                .distinct()
            )
            return {(r.learner_id, r.activity_id) for r in rows}

    def profiles(self, conn: Connection, learner_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(set(learner_ids))):
            rows = conn.execute(select(t.learners).where(t.learners.c.learner_id.in_(chunk)))
            found.update({r.learner_id: json.loads(r.profile) for r in rows})
        return found

    def current_credits(self, conn: Connection, record_ids: Iterable[str]) -> dict[str, CreditState]:
        current: dict[str, CreditState] = {}
        c = t.credits.c
        for chunk in chunks(list(set(record_ids))):
            rows = conn.execute(select(t.credits).join(*latest_credit_versions(c.record_id.in_(chunk))))
            for r in rows:
                current[r.record_id] = CreditState(
                    r.record_id,
                    r.version,
                    r.status,
                    r.learner_id,
                    r.activity_id,
                    r.credit_type,
                    Decimal(r.amount).quantize(Decimal("0.01")),
                    r.completed_on,
                    tuple(json.loads(r.record)["evidence"]),
                )
        return current

    def transaction(self) -> Any:
        return self.engine.begin()

    # -- the registry diff ------------------------------------------------------------------------
    def registry_expectations(self, registry: str) -> dict[str, Expectation]:
        """The latest version of every record ever routed to `registry`, with its delivery state there."""
        with self.engine.connect() as conn:
            return {row.record_id: expectation_of(row) for row in conn.execute(expectations_select(registry))}

    def credit_versions(self, keys: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        """The credit records of these (record_id, version) pairs, in no particular order."""
        found: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            wanted = set(keys)
            for chunk in chunks(sorted({record_id for record_id, _ in wanted})):
                rows = conn.execute(
                    select(t.credits.c.record_id, t.credits.c.version, t.credits.c.record).where(
                        t.credits.c.record_id.in_(chunk)
                    )
                )
                found += [record_from_json(r.record) for r in rows if (r.record_id, r.version) in wanted]
        return found


CONNECT_PATIENCE_S = 30.0


def _connect_patiently(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect, riding out a database that refuses connections for a few seconds (a restart, a failover):
    retried with backoff for up to CONNECT_PATIENCE_S, so a stage waits instead of failing the run. Refused
    credentials or a missing database fail at once. A statement cut off mid-transaction is not retried here:
    its transaction rolls back, the run fails, and the rerun converges (DESIGN §1)."""
    deadline = time.monotonic() + CONNECT_PATIENCE_S
    delay = 0.1
    while True:
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as err:
            if not _unavailable(err) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _unavailable(err: Exception) -> bool:
    """No answer from the server (refused, reset, timed out), or the server saying it is starting up or shutting
    down. libpq reports failed connections without a SQLSTATE, so the server's own refusals (unknown database or
    role, bad password: "FATAL: …") are told apart by their text."""
    message = str(err)
    return "FATAL:" not in message or "the database system is" in message


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def store_events(conn: Connection, events: Sequence[StoredEvent]) -> None:
    """The batch's new events (an event already stored stays as it is: replays are no-ops)."""
    now = utcnow()
    rows = [
        {
            "source": s.event["source"],
            "event_id": s.event["event_id"],
            "source_ref": s.event["source_ref"],
            "kind": s.event["kind"],
            "occurred_at": s.event["occurred_at"],
            "learner_id": s.learner_id,
            "activity_id": s.activity_id,
            "voids_key": f"{s.event['source']}:{s.event['voids_event_id']}" if s.event.get("voids_event_id") else None,
            "body": event_to_json(s.event),
            "kafka_partition": s.partition,
            "kafka_offset": s.offset,
            "ingested_at": now,
        }
        for s in events
    ]
    insert_new(conn, t.events, rows, ("source", "event_id"))


def store_identities(conn: Connection, identities: Mapping[IdentityKey, str]) -> None:
    """Identity keys newly linked to a learner (a key already linked keeps its learner)."""
    rows = [{"kind": kind, "value": value, "learner_id": lid} for (kind, value), lid in identities.items()]
    insert_new(conn, t.learner_ids, rows, ("kind", "value"))


def awarded_credits(ledger: Ledger) -> int:
    """Records whose latest version is AWARDED."""
    c = t.credits.c
    query = select(func.count()).select_from(t.credits.join(*latest_credit_versions())).where(c.status == AWARDED)
    with ledger.engine.connect() as conn:
        return int(conn.scalar(query) or 0)
