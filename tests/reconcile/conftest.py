"""Fixtures for the reconcile tests: an event builder, an in-memory run of the engine over batches (the pure
core as the intake drives it), and a real Avro codec against the sandbox schema registry for intake tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.http import RetryPolicy
from connectors.schema_registry import SchemaRegistryClient
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from pipeline.config import PROFESSIONS_FILE
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from reconcile.catalog import Catalog
from reconcile.credit_rules import event_key
from reconcile.credit_types import CREDIT_TYPES
from reconcile.engine import Hold, Rejection, reconcile_pairs, resolve_events
from reconcile.identity import IdentityIndex
from reconcile.learners import LearnerFacts, learner_profile
from reconcile.merge import AWARDED, CreditState, record_id_for
from reconcile.professions import load_professions
from schemas.codec import AvroCodec, subject_for

EventBuilder = Callable[..., dict[str, Any]]
SHIPPED_PROFESSIONS = load_professions(PROFESSIONS_FILE)
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05, jitter_s=0.01)


def build_event(
    event_id: str,
    kind: str = "COMPLETED",
    activity: str | None = "ACT",
    when: datetime = datetime(2026, 11, 20, 10, tzinfo=UTC),
    *,
    source: str = "lms",
    npi: str | None = "1234567893",
    profession: str | None = "MD",
    start: datetime | None = None,
    end: datetime | None = None,
    minutes: float | None = None,
    claims: Sequence[tuple[str, float]] = (),
    voids: str | None = None,
    **learner: Any,
) -> dict[str, Any]:
    """An AttendanceEvent as the codec decodes it; learner fields beyond NPI and profession as keywords."""
    return {
        "event_id": event_id,
        "source": source,
        "source_ref": f"{source}:{event_id}",
        "kind": kind,
        "occurred_at": when,
        "started_at": start,
        "ended_at": end,
        "minutes": minutes,
        "activity_ref": None if kind == "VOIDED" else activity,
        "learner": {} if kind == "VOIDED" else {"npi": npi, "profession": profession, **learner},
        "claimed": [{"credit_type": t, "amount": a} for t, a in claims] or None,
        "voids_event_id": voids,
    }


@pytest.fixture
def ev() -> EventBuilder:
    return build_event


Outcome = dict[tuple[str, str, str], tuple[str, str]]


@dataclass
class MemoryRun:
    """The engine driven batch by batch exactly as `pipeline.stages.reconcile` drives it, over dicts instead of SQL:
    events stored first, then every touched pair (and every pair of a learner whose facts changed)
    re-decided from all its stored evidence."""

    catalog: Catalog
    identities: IdentityIndex = field(default_factory=IdentityIndex)
    events: dict[str, tuple[dict[str, Any], str | None, str | None]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, list[CreditState]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    holds: dict[tuple[str, str, str], Hold] = field(default_factory=dict)

    def batch(self, batch: Sequence[Mapping[str, Any]]) -> list[CreditState]:
        fresh: dict[str, dict[str, Any]] = {}
        for event in batch:
            if event_key(event) not in self.events:
                fresh.setdefault(event_key(event), dict(event))
        targets = {k: (lid, aid) for k, (_, lid, aid) in self.events.items() if lid and aid}
        resolved, rejections = resolve_events(list(fresh.values()), self.catalog, self.identities, targets)
        self.rejections += rejections
        for r in resolved:
            self.events[r.key] = (dict(r.event), r.learner_id, r.activity_id)
        touched = {(r.learner_id, r.activity_id) for r in resolved if r.learner_id and r.activity_id}
        learners = {lid for lid, _ in touched}
        before = {lid: LearnerFacts.of(self.profiles.get(lid)) for lid in learners}
        for r in resolved:
            if r.learner_id and r.event["kind"] != "VOIDED":
                self.profiles[r.learner_id] = learner_profile(
                    self.profiles.get(r.learner_id), r.event["learner"], r.event["occurred_at"]
                )
        changed = {lid for lid in learners if LearnerFacts.of(self.profiles.get(lid)) != before[lid]}
        pairs = touched | {(lid, aid) for _, lid, aid in self.events.values() if lid in changed and aid}
        evidence: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for event, lid, aid in self.events.values():
            if (lid, aid) in pairs:
                evidence.setdefault((lid, aid), []).append(event)  # type: ignore[arg-type]
        voided = {f"{e['source']}:{e['voids_event_id']}" for e, _, _ in self.events.values() if e["kind"] == "VOIDED"}
        current = {rid: versions[-1] for rid, versions in self.records.items()}
        facts = {lid: LearnerFacts.of(self.profiles.get(lid)) for lid in learners}
        outcome = reconcile_pairs(evidence, voided, facts, self.catalog, current, professions=SHIPPED_PROFESSIONS)
        for state in outcome.versions:
            self.records.setdefault(state.record_id, []).append(state)
        for hold in outcome.held:
            self.holds[(hold.learner_id, hold.activity_id, hold.reason_code)] = hold
        for hold in outcome.settled:
            self.holds.pop((hold.learner_id, hold.activity_id, hold.reason_code), None)
        return outcome.versions

    def awarded(self) -> Outcome:
        """(learner, activity, credit type) → (amount, completed_on) of every record whose latest is AWARDED."""
        latest = [versions[-1] for versions in self.records.values()]
        return {
            (s.learner_id, s.activity_id, s.credit_type): (str(s.amount), s.completed_on.isoformat())
            for s in latest
            if s.status == AWARDED
        }

    def record(self, learner_id: str, activity_id: str, credit_type: str) -> list[CreditState]:
        assert credit_type in CREDIT_TYPES
        return self.records.get(record_id_for(learner_id, activity_id, credit_type), [])


@pytest.fixture(scope="module")
def schema_registry() -> Iterator[SchemaRegistrySandbox]:
    server = SchemaRegistrySandbox()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def attendance_codec(schema_registry: SchemaRegistrySandbox) -> AvroCodec:
    registry = SchemaRegistryClient(schema_registry.url, retry=FAST_RETRY)
    return AvroCodec("attendance_event", registry, subject_for(ATTENDANCE_TOPIC))


@pytest.fixture
def memory_run() -> type[MemoryRun]:
    """`memory_run(catalog)`: a fresh in-memory run of the engine; `.batch(events)` per batch."""
    return MemoryRun
