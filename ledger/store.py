"""The ledger: the durable record of events, learners, credit versions, outbox, deliveries and dead letters.

Every write here is idempotent (unique keys, upserts), so a rerun after a crash converges (DESIGN §1).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ledger import tables as t
from reconcile.identity import IdentityKey
from reconcile.merge import CreditState
from reconcile.vocabulary import AWARDED, DeliveryState

DEAD_LETTER_NAMESPACE = uuid.UUID("3c2b1a09-5e4d-4f6a-8b7c-9d0e1f2a3b4c")
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
class DeadLetterEntry:
    stage: str
    source: str
    source_ref: str
    reason_code: str
    reason: str
    payload: bytes
    registry: str | None = None

    @property
    def dead_letter_id(self) -> str:
        identity = "|".join((self.stage, self.source, self.source_ref, self.reason_code, self.registry or ""))
        return str(uuid.uuid5(DEAD_LETTER_NAMESPACE, identity))


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

    # -- the batch write ---------------------------------------------------------------------------
    def write_events(
        self,
        conn: Connection,
        events: Sequence[StoredEvent],
        identities: Mapping[IdentityKey, str],
        dead_letters: Sequence[DeadLetterEntry],
    ) -> None:
        """First half of a reconcile batch: the new events, identities and rejections (caller's transaction)."""
        now = utcnow()
        if events:
            conn.execute(
                _insert_ignore(conn, t.events, ("source", "event_id")),
                [
                    {
                        "source": s.event["source"],
                        "event_id": s.event["event_id"],
                        "source_ref": s.event["source_ref"],
                        "kind": s.event["kind"],
                        "occurred_at": s.event["occurred_at"],
                        "learner_id": s.learner_id,
                        "activity_id": s.activity_id,
                        "voids_key": (
                            f"{s.event['source']}:{s.event['voids_event_id']}"
                            if s.event.get("voids_event_id")
                            else None
                        ),
                        "body": event_to_json(s.event),
                        "kafka_partition": s.partition,
                        "kafka_offset": s.offset,
                        "ingested_at": now,
                    }
                    for s in events
                ],
            )
        if identities:
            conn.execute(
                _insert_ignore(conn, t.learner_ids, ("kind", "value")),
                [{"kind": k, "value": v, "learner_id": lid} for (k, v), lid in identities.items()],
            )
        self._upsert_dead_letters(conn, dead_letters, now)

    def write_credits(
        self,
        conn: Connection,
        profiles: Mapping[str, Mapping[str, Any]],
        credits: Sequence[tuple[CreditState, Mapping[str, Any]]],
        deliveries: Sequence[tuple[str, int, str]],
    ) -> None:
        """Second half: learner profiles, new credit versions, their outbox rows and deliveries.

        Every table is written with one executemany statement: statements built per row cost more than the
        reconciliation itself (profiled in the benchmark)."""
        now = utcnow()
        self._write_profiles(conn, profiles, now)
        if credits:
            conn.execute(
                insert(t.credits),
                [
                    {
                        "record_id": s.record_id,
                        "version": s.version,
                        "status": s.status,
                        "learner_id": s.learner_id,
                        "activity_id": s.activity_id,
                        "credit_type": s.credit_type,
                        "amount": s.amount,
                        "completed_on": s.completed_on,
                        "record": record_to_json(record),
                        "reconciled_at": record["reconciled_at"],
                    }
                    for s, record in credits
                ],
            )
            conn.execute(
                insert(t.outbox),
                [{"record_id": s.record_id, "version": s.version, "created_at": now} for s, _ in credits],
            )
        self._supersede_deliveries(conn, deliveries, now)
        if deliveries:
            conn.execute(
                insert(t.deliveries),
                [
                    {
                        "record_id": record_id,
                        "registry": registry,
                        "version": version,
                        "state": DeliveryState.PENDING,
                        "attempts": 0,
                        "updated_at": now,
                    }
                    for record_id, version, registry in deliveries
                ],
            )

    def _supersede_deliveries(
        self, conn: Connection, deliveries: Sequence[tuple[str, int, str]], now: datetime
    ) -> None:
        """Earlier versions still waiting to go to a registry are superseded by the new one. Found by primary
        key, then updated by primary key: with the state in the WHERE clause SQLite picks the (registry, state)
        index and walks every pending delivery once per row."""
        wanted = {(record_id, registry) for record_id, version, registry in deliveries if version > 1}
        if not wanted:
            return  # a first version has no earlier delivery
        d = t.deliveries.c
        waiting: list[dict[str, Any]] = []
        for chunk in chunks(sorted({record_id for record_id, _ in wanted})):
            rows = conn.execute(select(d.record_id, d.registry, d.version, d.state).where(d.record_id.in_(chunk)))
            waiting += [
                {"b_record_id": r.record_id, "b_registry": r.registry, "b_version": r.version}
                for r in rows
                if (r.record_id, r.registry) in wanted and r.state in (DeliveryState.PENDING, DeliveryState.FAILED)
            ]
        if waiting:
            conn.execute(
                update(t.deliveries)
                .where(
                    (d.record_id == bindparam("b_record_id"))
                    & (d.registry == bindparam("b_registry"))
                    & (d.version == bindparam("b_version"))
                )
                .values(state=DeliveryState.SUPERSEDED, updated_at=now),
                waiting,
            )

    def _write_profiles(self, conn: Connection, profiles: Mapping[str, Mapping[str, Any]], now: datetime) -> None:
        """Insert new learners' profiles, update the ones whose text changed, leave the rest alone: one upsert
        whose update is conditional, instead of reading the stored profiles back first."""
        if not profiles:
            return
        statement = _upsert_statement(conn, t.learners)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["learner_id"],
                set_={"profile": statement.excluded.profile, "updated_at": statement.excluded.updated_at},
                where=t.learners.c.profile != statement.excluded.profile,
            ),
            [
                {"learner_id": learner_id, "profile": json.dumps(profile, sort_keys=True), "updated_at": now}
                for learner_id, profile in profiles.items()
            ],
        )

    def transaction(self) -> Any:
        return self.engine.begin()

    # -- dead letters ------------------------------------------------------------------------------
    def add_dead_letters(self, entries: Sequence[DeadLetterEntry]) -> None:
        with self.engine.begin() as conn:
            self._upsert_dead_letters(conn, entries, utcnow())

    def resolve_dead_letters(self, conn: Connection, dead_letter_ids: Iterable[str]) -> None:
        """Mark open dead letters resolved, e.g. a held credit issued once its gap was filled (caller's transaction)."""
        d = t.dead_letters.c
        now = utcnow()
        for chunk in chunks(list(set(dead_letter_ids))):
            conn.execute(
                update(t.dead_letters)
                .where(d.dead_letter_id.in_(chunk) & d.resolved_at.is_(None))
                .values(resolved_at=now)
            )

    def _upsert_dead_letters(self, conn: Connection, entries: Sequence[DeadLetterEntry], now: datetime) -> None:
        """New dead letters inserted, known ones seen again (one more attempt): one upsert, so two writers
        failing the same item at once both count instead of one hitting the primary key."""
        if not entries:
            return
        d = t.dead_letters.c
        # One row per id (a statement may not touch a row twice); an id seen n times in the batch counts n.
        seen = Counter(entry.dead_letter_id for entry in entries)
        unique = {entry.dead_letter_id: entry for entry in entries}.values()
        rows = [
            {
                "dead_letter_id": entry.dead_letter_id,
                "stage": entry.stage,
                "source": entry.source,
                "source_ref": entry.source_ref,
                "reason_code": entry.reason_code,
                "reason": entry.reason,
                "payload": entry.payload,
                "attempts": seen[entry.dead_letter_id],
                "first_seen": now,
                "last_seen": now,
                "registry": entry.registry,
            }
            for entry in unique
        ]
        statement = _upsert_statement(conn, t.dead_letters)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["dead_letter_id"],
                set_={
                    "attempts": d.attempts + statement.excluded.attempts,
                    "last_seen": statement.excluded.last_seen,
                    "reason": statement.excluded.reason,
                    "published_at": None,
                },
            ),
            rows,
        )

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

    def save_registry_diff(
        self, run_id: str, registry: str, counts: Mapping[str, int], record_ids: Mapping[str, Sequence[str]]
    ) -> None:
        """Store (or, when a run repeats the diff, replace) one registry's diff report for the run."""
        values = {
            "created_at": utcnow(),
            "counts": json.dumps(dict(counts), sort_keys=True),
            "record_ids": json.dumps({k: sorted(v) for k, v in record_ids.items()}, sort_keys=True),
        }
        with self.engine.begin() as conn:
            upsert(conn, t.registry_diffs, [{"run_id": run_id, "registry": registry, **values}], ("run_id", "registry"))


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


def _upsert_statement(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL and SQLite alike): writes that two writers can
    race on are one statement, never UPDATE-then-INSERT (the second INSERT would hit the primary key)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _insert_ignore(conn: Connection, table: Any, keys: tuple[str, ...]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, so replayed events and identities are no-ops."""
    return _upsert_statement(conn, table).on_conflict_do_nothing(index_elements=list(keys))


Excluded = Any  # the row an INSERT … ON CONFLICT proposed (`excluded.<column>` in SQL)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Callable[[Excluded], Mapping[str, Any]] | None = None,
    where: Callable[[Excluded], ColumnElement[bool]] | None = None,
) -> None:
    """Insert `rows`; a row whose `keys` are already there updates it instead: one INSERT … ON CONFLICT DO UPDATE
    (see `_upsert_statement`). `update(excluded)` gives the columns to set (default: every column of the row
    but the keys, as proposed); with `where(excluded)`, only the rows it holds for are updated, the others stay."""
    if not rows:
        return
    statement = _upsert_statement(conn, table)
    excluded = statement.excluded
    values = update(excluded) if update else {c: excluded[c] for c in rows[0] if c not in keys}
    condition = where(excluded) if where else None
    conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values, where=condition), rows)


def insert_new(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Insert the `rows` whose `keys` are not there yet; the others stay as they are (ON CONFLICT DO NOTHING)."""
    if rows:
        conn.execute(_insert_ignore(conn, table, tuple(keys)), rows)


def awarded_credits(ledger: Ledger) -> int:
    """Records whose latest version is AWARDED."""
    c = t.credits.c
    query = select(func.count()).select_from(t.credits.join(*latest_credit_versions())).where(c.status == AWARDED)
    with ledger.engine.connect() as conn:
        return int(conn.scalar(query) or 0)
