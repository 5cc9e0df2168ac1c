"""Reconcile stage: AttendanceEvents from Kafka → ledger (events, learners, credit versions, outbox,
deliveries, dead letters) in one transaction per batch; offsets are committed after that transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.registries.base import Registry
from ledger.store import DeadLetterEntry, Ledger, StoredEvent, utcnow
from pipeline.kafka_io import BatchConsumer, Consumed
from reconcile.catalog import Catalog
from reconcile.credit_rules import ACCREDITOR_OF, RULES, event_key
from reconcile.engine import learner_profile, reconcile_pairs, resolve_events
from reconcile.identity import identity_keys
from reconcile.merge import CreditState, record_id_for
from schemas.codec import AvroCodec, SchemaInvalid

log = logging.getLogger(__name__)

CREDIT_LEARNER_FIELDS = (
    "npi",
    "board_id",
    "licence_number",
    "licence_state",
    "profession",
    "given_name",
    "family_name",
    "dob_month_day",
)


@dataclass
class IntakeStats:
    consumed: int = 0
    duplicates: int = 0
    accepted: int = 0
    rejected: int = 0
    credit_versions: int = 0


def credit_record(state: CreditState, activity_title: str, profile: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "record_id": state.record_id,
        "version": state.version,
        "status": state.status,
        "learner_id": state.learner_id,
        "learner": {f: profile.get(f) for f in CREDIT_LEARNER_FIELDS},
        "activity_id": state.activity_id,
        "activity_title": activity_title,
        "accreditor": ACCREDITOR_OF[state.credit_type],
        "credit_type": state.credit_type,
        "amount": state.amount,
        "completed_on": state.completed_on,
        "evidence": list(state.evidence),
        "reconciled_at": now,
    }


def reconcile_messages(
    messages: Sequence[Consumed],
    codec: AvroCodec,
    ledger: Ledger,
    catalog: Catalog,
    registries: Sequence[Registry],
) -> IntakeStats:
    """Reconcile one batch of consumed messages into the ledger, in one transaction."""
    stats = IntakeStats(consumed=len(messages))
    dead: list[DeadLetterEntry] = []
    decoded: list[tuple[dict[str, Any], Consumed]] = []
    for message in messages:
        try:
            decoded.append((codec.decode(message.value), message))
        except SchemaInvalid as err:
            ref = f"kafka {message.partition}:{message.offset}"
            dead.append(DeadLetterEntry("reconcile", codec.subject, ref, "SCHEMA_INVALID", err.reason, message.value))

    known = ledger.known_event_keys([(e["source"], e["event_id"]) for e, _ in decoded])
    fresh: dict[str, tuple[dict[str, Any], Consumed]] = {}
    for event, message in decoded:
        if (event["source"], event["event_id"]) in known or event_key(event) in fresh:
            stats.duplicates += 1
            continue
        fresh[event_key(event)] = (event, message)
    events = [event for event, _ in fresh.values()]

    identities = ledger.identities(k for e in events if e["kind"] != "VOIDED" for k in identity_keys(e["learner"]))
    known_before = dict(identities)
    void_targets = [f"{e['source']}:{e['voids_event_id']}" for e in events if e["kind"] == "VOIDED"]
    resolved, rejections = resolve_events(events, catalog, identities, ledger.event_pairs(void_targets))
    for rejection in rejections:
        _, message = fresh[event_key(rejection.event)]
        dead.append(
            DeadLetterEntry(
                "reconcile",
                rejection.event["source"],
                rejection.event["source_ref"],
                rejection.reason_code,
                f"{rejection.reason} (kafka {message.partition}:{message.offset})",
                message.value,
            )
        )
    new_identities = {k: v for k, v in identities.items() if k not in known_before}
    stored = [
        StoredEvent(r.event, r.learner_id, r.activity_id, fresh[r.key][1].partition, fresh[r.key][1].offset)
        for r in resolved
    ]
    now = utcnow()
    with ledger.transaction() as conn:
        ledger.write_events(conn, stored, new_identities, dead)
        pairs = {(r.learner_id, r.activity_id) for r in resolved if r.learner_id and r.activity_id}
        evidence = ledger.evidence(conn, pairs)
        voided = ledger.voided_keys(conn, [event_key(e) for evs in evidence.values() for e in evs])
        learner_ids = {learner_id for learner_id, _ in pairs}
        profiles = ledger.profiles(conn, learner_ids)
        for r in resolved:
            if r.learner_id and r.event["kind"] != "VOIDED":
                profiles[r.learner_id] = learner_profile(profiles.get(r.learner_id), r.event["learner"])
        record_ids = [record_id_for(lid, aid, ct) for lid, aid in pairs for ct in RULES]
        current = ledger.current_credits(conn, record_ids)
        professions = {lid: profiles.get(lid, {}).get("profession") for lid in learner_ids}
        versions = reconcile_pairs(evidence, voided, professions, catalog, current)
        credits = [
            (s, credit_record(s, catalog.activities[s.activity_id].title, profiles[s.learner_id], now))
            for s in versions
        ]
        deliveries = [
            (s.record_id, s.version, registry.name)
            for s, record in credits
            for registry in registries
            if registry.accepts(record)
        ]
        ledger.write_credits(conn, {lid: profiles[lid] for lid in learner_ids if lid in profiles}, credits, deliveries)
    stats.accepted = len(resolved)
    stats.rejected = len(dead)
    stats.credit_versions = len(versions)
    return stats


def reconcile_topic(
    consumer: BatchConsumer,
    codec: AvroCodec,
    ledger: Ledger,
    catalog: Catalog,
    registries: Sequence[Registry],
    on_batch: Callable[[IntakeStats], None] | None = None,
) -> IntakeStats:
    total = IntakeStats()
    for batch in consumer.batches():
        stats = reconcile_messages(batch, codec, ledger, catalog, registries)
        consumer.commit(batch)
        for field in vars(total):
            setattr(total, field, getattr(total, field) + getattr(stats, field))
        if on_batch:
            on_batch(total)
    log.info(
        "reconciled %d messages: %d accepted, %d duplicates, %d rejected, %d credit versions",
        total.consumed,
        total.accepted,
        total.duplicates,
        total.rejected,
        total.credit_versions,
    )
    return total
