"""Read-side ledger queries for operators: recent runs, delivery backlog, dead-letter listings and the selection
of deliveries to replay. Nothing here returns a dead letter's payload except `dead_letter_payload`, which only
an explicit `--reveal` reaches: payloads are the original records and carry PII.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from ledger import tables as t
from ledger.store import Ledger, as_utc, chunks
from reconcile.vocabulary import REGISTRY_UNAVAILABLE, DeliveryState

DELIVER_STAGE = "deliver"

DeliveryKey = tuple[str, int, str]  # (record_id, version, registry)


def utc(moment: datetime | None) -> datetime | None:
    """Bind time parameters as aware UTC: PostgreSQL compares instants, SQLite compares the UTC text it stores
    (its driver drops the zone), so both must be given the UTC wall time. Naive input is taken as UTC."""
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def delivery_key_of(source_ref: str, payload: bytes) -> tuple[str, int] | None:
    """(record_id, version) a deliver-stage dead letter is about: pipeline/stages/deliver.py stores the registry
    idempotency key `<record_id>:<version>` as its payload and `credit <record_id> v<version>` as its source_ref."""
    try:
        record_id, _, version = payload.decode().rpartition(":")
        if record_id:
            return record_id, int(version)
    except (UnicodeDecodeError, ValueError):
        pass
    parts = source_ref.split()
    if len(parts) == 3 and parts[0] == "credit" and parts[2].startswith("v") and parts[2][1:].isdigit():
        return parts[1], int(parts[2][1:])
    return None


# -- runs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    run_id: str
    flow: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]

    @property
    def duration_s(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


def _run_row(row: Any) -> RunRow:
    return RunRow(
        row.run_id,
        row.flow,
        row.status,
        as_utc(row.started_at),
        as_utc(row.finished_at) if row.finished_at else None,
        json.loads(row.counts or "{}"),
    )


def recent_runs(ledger: Ledger, limit: int = 5) -> list[RunRow]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit))
        return [_run_row(r) for r in rows]


def run_by_id(ledger: Ledger, run_id: str) -> RunRow | None:
    with ledger.engine.connect() as conn:
        row = conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
        return _run_row(row) if row else None


def runs_up_to(ledger: Ledger, flow: str, until: datetime, limit: int) -> list[RunRow]:
    """The last `limit` runs of `flow` that started at or before `until`, oldest first (a report's trend)."""
    r = t.runs.c
    query = (
        select(t.runs)
        .where((r.flow == flow) & (r.started_at <= utc(until)))
        .order_by(r.started_at.desc(), r.run_id.desc())
        .limit(limit)
    )
    with ledger.engine.connect() as conn:
        return [_run_row(row) for row in conn.execute(query)][::-1]


def runs_by_prefix(ledger: Ledger, prefix: str, limit: int = 2) -> list[RunRow]:
    """Runs whose id starts with `prefix` (reports name a run by its first characters), at most `limit`."""
    query = select(t.runs).where(t.runs.c.run_id.startswith(prefix, autoescape=True)).order_by(t.runs.c.run_id)
    with ledger.engine.connect() as conn:
        return [_run_row(row) for row in conn.execute(query.limit(limit))]


# -- deliveries ------------------------------------------------------------------------------------------------


def delivery_backlog(ledger: Ledger) -> dict[str, dict[str, int]]:
    """Per registry, how many deliveries are in each state (superseded versions left out)."""
    d = t.deliveries.c
    query = (
        select(d.registry, d.state, func.count().label("n"))
        .where(d.state != DeliveryState.SUPERSEDED)
        .group_by(d.registry, d.state)
        .order_by(d.registry, d.state)
    )
    backlog: dict[str, dict[str, int]] = {}
    with ledger.engine.connect() as conn:
        for row in conn.execute(query):
            backlog.setdefault(row.registry, {})[row.state] = int(row.n)
    return backlog


@dataclass(frozen=True)
class DeliverySelection:
    """Which deliveries a replay takes: failed ones by default; with `record_ids`, those records' current
    deliveries whatever their state. Every other field narrows the selection; empty means "any". Record and
    learner ids may be given as prefixes, as the tables print them."""

    registries: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    record_ids: tuple[str, ...] = ()
    reason_codes: tuple[str, ...] = ()
    learner_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SelectedDelivery:
    record_id: str
    version: int
    registry: str
    state: str
    attempts: int
    updated_at: datetime
    learner_id: str
    activity_id: str
    credit_type: str
    reason_codes: tuple[str, ...] = field(default=())

    @property
    def key(self) -> DeliveryKey:
        return self.record_id, self.version, self.registry


def select_deliveries(ledger: Ledger, selection: DeliverySelection) -> list[SelectedDelivery]:
    d, c = t.deliveries.c, t.credits.c
    query = (
        select(
            d.record_id,
            d.version,
            d.registry,
            d.state,
            d.attempts,
            d.updated_at,
            c.learner_id,
            c.activity_id,
            c.credit_type,
        )
        .join(t.credits, and_(c.record_id == d.record_id, c.version == d.version))
        .where(d.state != DeliveryState.SUPERSEDED)
        .order_by(d.registry, d.updated_at, d.record_id)
    )
    if selection.record_ids:
        query = query.where(or_(*[d.record_id.startswith(i, autoescape=True) for i in selection.record_ids]))
    else:
        query = query.where(d.state == DeliveryState.FAILED)
    if selection.registries:
        query = query.where(d.registry.in_(selection.registries))
    if selection.learner_ids:
        query = query.where(or_(*[c.learner_id.startswith(i, autoescape=True) for i in selection.learner_ids]))
    if selection.since:
        query = query.where(d.updated_at >= utc(selection.since))
    if selection.until:
        query = query.where(d.updated_at < utc(selection.until))
    with ledger.engine.connect() as conn:
        rows = list(conn.execute(query))
    reasons = delivery_reasons(ledger, [(r.record_id, r.version, r.registry) for r in rows])
    selected = [
        SelectedDelivery(
            r.record_id,
            r.version,
            r.registry,
            r.state,
            r.attempts,
            as_utc(r.updated_at),
            r.learner_id,
            r.activity_id,
            r.credit_type,
            tuple(sorted(reasons.get((r.record_id, r.version, r.registry), ()))),
        )
        for r in rows
    ]
    if selection.reason_codes:
        wanted = set(selection.reason_codes)
        selected = [s for s in selected if wanted & set(s.reason_codes)]
    return selected


def _delivery_dead_letters(
    ledger: Ledger, keys: Sequence[DeliveryKey], unresolved_only: bool, seen_since: datetime | None = None
) -> list[tuple[DeliveryKey, str, str]]:
    """(delivery, dead_letter_id, reason_code) of the deliver-stage dead letters of the given deliveries."""
    wanted = set(keys)
    registries = sorted({registry for _, _, registry in wanted})
    found: list[tuple[DeliveryKey, str, str]] = []
    dl = t.dead_letters.c
    with ledger.engine.connect() as conn:
        for chunk in chunks(registries):
            query = select(dl.dead_letter_id, dl.registry, dl.source_ref, dl.payload, dl.reason_code).where(
                (dl.stage == DELIVER_STAGE) & dl.registry.in_(chunk)
            )
            if unresolved_only:
                query = query.where(dl.resolved_at.is_(None))
            if seen_since:
                query = query.where(dl.last_seen >= utc(seen_since))
            for row in conn.execute(query):
                pair = delivery_key_of(row.source_ref, row.payload)
                if pair and (key := (pair[0], pair[1], row.registry)) in wanted:
                    found.append((key, row.dead_letter_id, row.reason_code))
    return found


def delivery_reasons(ledger: Ledger, keys: Sequence[DeliveryKey]) -> dict[DeliveryKey, set[str]]:
    """The reason codes of the unresolved deliver-stage dead letters of each delivery."""
    reasons: dict[DeliveryKey, set[str]] = {}
    for key, _, reason_code in _delivery_dead_letters(ledger, keys, unresolved_only=True):
        reasons.setdefault(key, set()).add(reason_code)
    return reasons


def unavailable_deliveries(ledger: Ledger, registry: str) -> list[tuple[DeliveryKey, str, int, datetime]]:
    """Deliveries to `registry` still failed (or requeued, pending) whose latest open dead letter says the
    registry was unavailable: (delivery, state, failures so far, latest failure). REGISTRY_REJECTED ones are left out:
    the data has to change, or an operator decide, before sending them again helps."""
    dl = t.dead_letters.c
    latest: dict[DeliveryKey, tuple[datetime, str, int]] = {}
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(dl.source_ref, dl.payload, dl.reason_code, dl.attempts, dl.last_seen).where(
                (dl.stage == DELIVER_STAGE) & (dl.registry == registry) & dl.resolved_at.is_(None)
            )
        )
        for row in rows:
            pair = delivery_key_of(row.source_ref, row.payload)
            seen = as_utc(row.last_seen)
            if pair and ((key := (pair[0], pair[1], registry)) not in latest or latest[key][0] < seen):
                latest[key] = (seen, row.reason_code, int(row.attempts))
    unavailable = {key: v for key, v in latest.items() if v[1] == REGISTRY_UNAVAILABLE}
    states = delivery_states(ledger, list(unavailable))
    return [
        (key, states[key], attempts, seen)
        for key, (seen, _, attempts) in sorted(unavailable.items())
        if states.get(key) in (DeliveryState.FAILED, DeliveryState.PENDING)
    ]


def delivery_dead_letter_ids(
    ledger: Ledger, keys: Sequence[DeliveryKey], seen_since: datetime | None = None
) -> list[str]:
    """Ids of the deliver-stage dead letters (resolved or not) raised for the given deliveries, optionally only
    those raised again since a moment."""
    found = _delivery_dead_letters(ledger, keys, unresolved_only=False, seen_since=seen_since)
    return [dead_letter_id for _, dead_letter_id, _ in found]


def delivery_states(ledger: Ledger, keys: Sequence[DeliveryKey]) -> dict[DeliveryKey, str]:
    """The current state of each (record_id, version, registry) delivery."""
    d = t.deliveries.c
    wanted = set(keys)
    states: dict[DeliveryKey, str] = {}
    with ledger.engine.connect() as conn:
        for chunk in chunks(sorted({record_id for record_id, _, _ in wanted})):
            rows = conn.execute(select(d.record_id, d.version, d.registry, d.state).where(d.record_id.in_(chunk)))
            for r in rows:
                if (key := (r.record_id, r.version, r.registry)) in wanted:
                    states[key] = r.state
    return states


# -- dead letters ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterFilter:
    ids: tuple[str, ...] = ()  # full ids or unique prefixes
    stages: tuple[str, ...] = ()
    reason_codes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    registries: tuple[str, ...] = ()
    since: datetime | None = None
    unresolved_only: bool = False
    limit: int | None = None


@dataclass(frozen=True)
class DeadLetterRow:
    """A dead letter without its payload; `payload_bytes` says how much there is to reveal."""

    dead_letter_id: str
    stage: str
    source: str
    source_ref: str
    reason_code: str
    reason: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    registry: str | None
    published_at: datetime | None
    resolved_at: datetime | None
    payload_bytes: int

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


_DEAD_LETTER_COLUMNS = (
    t.dead_letters.c.dead_letter_id,
    t.dead_letters.c.stage,
    t.dead_letters.c.source,
    t.dead_letters.c.source_ref,
    t.dead_letters.c.reason_code,
    t.dead_letters.c.reason,
    t.dead_letters.c.attempts,
    t.dead_letters.c.first_seen,
    t.dead_letters.c.last_seen,
    t.dead_letters.c.registry,
    t.dead_letters.c.published_at,
    t.dead_letters.c.resolved_at,
    func.length(t.dead_letters.c.payload).label("payload_bytes"),
)


def _dead_letter_row(row: Any) -> DeadLetterRow:
    return DeadLetterRow(
        row.dead_letter_id,
        row.stage,
        row.source,
        row.source_ref,
        row.reason_code,
        row.reason,
        int(row.attempts),
        as_utc(row.first_seen),
        as_utc(row.last_seen),
        row.registry,
        as_utc(row.published_at) if row.published_at else None,
        as_utc(row.resolved_at) if row.resolved_at else None,
        int(row.payload_bytes or 0),
    )


def _dead_letter_conditions(where: DeadLetterFilter) -> list[Any]:
    dl = t.dead_letters.c
    conditions: list[Any] = []
    if where.ids:
        conditions.append(or_(*[dl.dead_letter_id.startswith(i, autoescape=True) for i in where.ids]))
    if where.stages:
        conditions.append(dl.stage.in_(where.stages))
    if where.reason_codes:
        conditions.append(dl.reason_code.in_(where.reason_codes))
    if where.sources:
        conditions.append(dl.source.in_(where.sources))
    if where.registries:
        conditions.append(dl.registry.in_(where.registries))
    if where.since:
        conditions.append(dl.last_seen >= utc(where.since))
    if where.unresolved_only:
        conditions.append(dl.resolved_at.is_(None))
    return conditions


def dead_letters(ledger: Ledger, where: DeadLetterFilter) -> list[DeadLetterRow]:
    dl = t.dead_letters.c
    query = select(*_DEAD_LETTER_COLUMNS).where(*_dead_letter_conditions(where))
    query = query.order_by(dl.last_seen.desc(), dl.dead_letter_id)
    if where.limit:
        query = query.limit(where.limit)
    with ledger.engine.connect() as conn:
        return [_dead_letter_row(r) for r in conn.execute(query)]


def count_dead_letters(ledger: Ledger, where: DeadLetterFilter) -> int:
    """How many dead letters match the filter, whatever its `limit` (for "5 of 29")."""
    query = select(func.count()).select_from(t.dead_letters).where(*_dead_letter_conditions(where))
    with ledger.engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def dead_letter_reason_codes(ledger: Ledger) -> set[str]:
    """Every reason code the ledger's dead letters carry."""
    with ledger.engine.connect() as conn:
        return set(conn.scalars(select(t.dead_letters.c.reason_code).distinct()))


def dead_letter_reasons(ledger: Ledger, dead_letter_ids: Sequence[str]) -> dict[str, int]:
    """The "REASON_CODE: reason" texts of the given dead letters, with how many share it (what a replay failed on)."""
    dl = t.dead_letters.c
    found: dict[str, int] = {}
    with ledger.engine.connect() as conn:
        for chunk in chunks(sorted(set(dead_letter_ids))):
            for row in conn.execute(select(dl.reason_code, dl.reason).where(dl.dead_letter_id.in_(chunk))):
                text = f"{row.reason_code}: {row.reason}"
                found[text] = found.get(text, 0) + 1
    return found


class DeadLetterNotFound(LookupError):
    """No dead letter, or more than one, matches the id or prefix given."""


def dead_letter(ledger: Ledger, id_or_prefix: str) -> DeadLetterRow:
    """The one dead letter whose id is or starts with `id_or_prefix`."""
    found = dead_letters(ledger, DeadLetterFilter(ids=(id_or_prefix,), limit=2))
    if not found:
        raise DeadLetterNotFound(f"no dead letter with id {id_or_prefix!r}")
    if len(found) > 1:
        raise DeadLetterNotFound(f"id prefix {id_or_prefix!r} matches more than one dead letter: give more of it")
    return found[0]


def dead_letter_payload(ledger: Ledger, dead_letter_id: str) -> bytes:
    """The original bytes of a dead letter: PII. Only for an explicit reveal or for a retry."""
    with ledger.engine.connect() as conn:
        payload = conn.scalar(select(t.dead_letters.c.payload).where(t.dead_letters.c.dead_letter_id == dead_letter_id))
    if payload is None:
        raise DeadLetterNotFound(f"no dead letter with id {dead_letter_id!r}")
    return bytes(payload)


def oldest_unresolved_dead_letter(ledger: Ledger) -> DeadLetterRow | None:
    dl = t.dead_letters.c
    query = (
        select(*_DEAD_LETTER_COLUMNS)
        .where(dl.resolved_at.is_(None))
        .order_by(dl.first_seen, dl.dead_letter_id)
        .limit(1)
    )
    with ledger.engine.connect() as conn:
        row = conn.execute(query).first()
        return _dead_letter_row(row) if row else None


def unresolved_dead_letter_counts(ledger: Ledger) -> list[tuple[str, str, int]]:
    """(stage, reason_code, count) of the dead letters nobody has resolved yet."""
    dl = t.dead_letters.c
    query = (
        select(dl.stage, dl.reason_code, func.count().label("n"))
        .where(dl.resolved_at.is_(None))
        .group_by(dl.stage, dl.reason_code)
        .order_by(dl.stage, dl.reason_code)
    )
    with ledger.engine.connect() as conn:
        return [(r.stage, r.reason_code, int(r.n)) for r in conn.execute(query)]


# -- one run's window, for the run report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def events_by_source(ledger: Ledger, window: Window) -> dict[str, int]:
    """Events accepted into the ledger during the window, per source."""
    e = t.events.c
    query = (
        select(e.source, func.count().label("n"))
        .where((e.ingested_at >= utc(window.start)) & (e.ingested_at <= utc(window.end)))
        .group_by(e.source)
        .order_by(e.source)
    )
    with ledger.engine.connect() as conn:
        return {r.source: int(r.n) for r in conn.execute(query)}


def dead_letters_seen(ledger: Ledger, window: Window) -> list[tuple[str, str, str, int]]:
    """(stage, source, reason_code, count) of the dead letters raised or raised again during the window."""
    dl = t.dead_letters.c
    query = (
        select(dl.stage, dl.source, dl.reason_code, func.count().label("n"))
        .where((dl.last_seen >= utc(window.start)) & (dl.last_seen <= utc(window.end)))
        .group_by(dl.stage, dl.source, dl.reason_code)
        .order_by(dl.stage, dl.source, dl.reason_code)
    )
    with ledger.engine.connect() as conn:
        return [(r.stage, r.source, r.reason_code, int(r.n)) for r in conn.execute(query)]


def deliveries_touched(ledger: Ledger, window: Window) -> dict[str, dict[str, int]]:
    """Per registry and state, the deliveries written or updated during the window (superseded left out)."""
    d = t.deliveries.c
    query = (
        select(d.registry, d.state, func.count().label("n"))
        .where(
            (d.updated_at >= utc(window.start))
            & (d.updated_at <= utc(window.end))
            & (d.state != DeliveryState.SUPERSEDED)
        )
        .group_by(d.registry, d.state)
        .order_by(d.registry, d.state)
    )
    touched: dict[str, dict[str, int]] = {}
    with ledger.engine.connect() as conn:
        for r in conn.execute(query):
            touched.setdefault(r.registry, {})[r.state] = int(r.n)
    return touched


def registry_diffs_of(ledger: Ledger, run_id: str) -> dict[str, dict[str, int]]:
    """The nightly registry diff's counts stored for one run, per registry."""
    r = t.registry_diffs.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(r.registry, r.counts).where(r.run_id == run_id).order_by(r.registry))
        return {row.registry: json.loads(row.counts) for row in rows}


def last_finished_runs(ledger: Ledger, statuses: Sequence[str]) -> dict[str, datetime]:
    """Per flow, when its latest run with one of `statuses` finished (metrics: last successful run)."""
    r = t.runs.c
    query = (
        select(r.flow, func.max(r.finished_at).label("finished_at"))
        .where(r.status.in_(statuses), r.finished_at.is_not(None))
        .group_by(r.flow)
    )
    with ledger.engine.connect() as conn:
        return {row.flow: as_utc(row.finished_at) for row in conn.execute(query)}


def sent_since(ledger: Ledger, registry: str, since: datetime) -> list[tuple[str, int]]:
    """(record_id, version) of the deliveries to `registry` sent (or last confirmed) since a moment, oldest
    first: those a registry that decides later (PARS boards) may still reject."""
    d = t.deliveries.c
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(d.record_id, d.version)
            .where((d.registry == registry) & (d.state == DeliveryState.SENT) & (d.updated_at >= since))
            .order_by(d.updated_at, d.record_id)
        )
        return [(r.record_id, int(r.version)) for r in rows]
