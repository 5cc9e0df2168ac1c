"""Reconcile stage: AttendanceEvents from Kafka → ledger (events, learners, credit versions, outbox,
deliveries, dead letters) in one transaction per batch; offsets are committed after that transaction."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from connectors.registries.base import Registry
from connectors.sources.base import RecordError
from connectors.sources.event_check import check_event
from connectors.sources.fields import text
from ledger.batch_checkpoint import BatchCheckpoint
from ledger.dead_letters import DeadLetterEntry
from ledger.evidence import event_cache, pair_evidence, stored_pairs
from ledger.store import Ledger, StoredEvent, utcnow
from pipeline import metrics
from pipeline.kafka.interface import Consumed, Consumer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages.faults import crash_point
from reconcile.catalog import Catalog
from reconcile.credit_rules import event_key, possible_credit_types
from reconcile.credit_types import ACCREDITOR_OF
from reconcile.engine import Hold, Pair, Rejection, ResolvedEvent, reconcile_pairs, resolve_events
from reconcile.identity import IdentityIndex, identity_keys
from reconcile.learners import LearnerFacts, learner_profile
from reconcile.merge import CreditState, record_id_for
from reconcile.professions import ProfessionMap
from reconcile.vocabulary import SCHEMA_INVALID, UNKNOWN_PROFESSION
from schemas.codec import AvroCodec, SchemaInvalid

log = logging.getLogger(__name__)

STAGE = "reconcile"
CREDIT_LEARNER_FIELDS = (
    "npi",
    "board_id",
    "licence_number",
    "licence_state",
    "profession",
    "given_name",
    "family_name",
    "dob_month_day",
    "board",
    "moc_consent",
)

Fresh = dict[str, tuple[dict[str, Any], Consumed]]


@dataclass
class IntakeStats:
    consumed: int = 0
    duplicates: int = 0
    accepted: int = 0
    rejected: int = 0
    held_back: int = 0  # accepted events whose credit waits for a missing learner fact (dead-lettered)
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


def _kafka_ref(message: Consumed) -> str:
    return f"kafka {message.partition}:{message.offset}"


def _decode(
    messages: Sequence[Consumed], codec: AvroCodec
) -> tuple[list[tuple[dict[str, Any], Consumed]], list[DeadLetterEntry]]:
    decoded: list[tuple[dict[str, Any], Consumed]] = []
    dead: list[DeadLetterEntry] = []
    for message in messages:
        try:
            event = codec.decode(message.value)
            check_event(event)  # pushed events never went through our field parsers
            decoded.append((event, message))
        except SchemaInvalid as err:
            dead.append(
                DeadLetterEntry(STAGE, codec.subject, _kafka_ref(message), SCHEMA_INVALID, err.reason, message.value)
            )
        except RecordError as err:
            source, source_ref = _position(event, codec.subject, message)
            reason = f"{err} ({_kafka_ref(message)})"
            dead.append(DeadLetterEntry(STAGE, source, source_ref, err.reason_code, reason, message.value))
    return decoded, dead


def _position(event: Mapping[str, Any], subject: str, message: Consumed) -> tuple[str, str]:
    """Where a refused event came from: its own source position, unless that is the unusable part."""
    try:
        source, source_ref = text(event["source"], "source"), text(event["source_ref"], "source_ref")
    except RecordError:
        source = source_ref = None
    return (source, source_ref) if source and source_ref else (subject, _kafka_ref(message))


def _fresh(decoded: Sequence[tuple[dict[str, Any], Consumed]], ledger: Ledger) -> Fresh:
    """Events neither in the ledger nor earlier in the batch, by event key, in batch order."""
    known = ledger.known_event_keys([(e["source"], e["event_id"]) for e, _ in decoded])
    fresh: Fresh = {}
    for event, message in decoded:
        if (event["source"], event["event_id"]) not in known:
            fresh.setdefault(event_key(event), (event, message))
    return fresh


def _identity_index(ledger: Ledger, events: Sequence[Mapping[str, Any]]) -> IdentityIndex:
    """The ledger's identities for the batch's keys, with every key of the learners they point at."""
    known = ledger.identities(k for e in events if e["kind"] != "VOIDED" for k in identity_keys(e["learner"]))
    known.update(ledger.learner_keys(set(known.values())))
    return IdentityIndex(known)


def _rejected(rejection: Rejection, message: Consumed) -> DeadLetterEntry:
    event = rejection.event
    reason = f"{rejection.reason} ({_kafka_ref(message)})"
    return DeadLetterEntry(STAGE, event["source"], event["source_ref"], rejection.reason_code, reason, message.value)


def _held(holds: Sequence[Hold], fresh: Fresh) -> list[DeadLetterEntry]:
    """One dead letter per event of this batch whose credit is held back; earlier events already have one."""
    return [
        DeadLetterEntry(
            STAGE,
            event["source"],
            event["source_ref"],
            hold.reason_code,
            f"{hold.reason}: credit for {hold.activity_id} held back ({_kafka_ref(fresh[event_key(event)][1])})",
            fresh[event_key(event)][1].value,
        )
        for hold in holds
        for event in hold.events
        if event_key(event) in fresh
    ]


def _learn(profiles: dict[str, dict[str, Any]], resolved: Sequence[ResolvedEvent]) -> set[str]:
    """Fold the batch's learner blocks into `profiles`; return the learners whose rule-relevant facts changed."""
    before = {r.learner_id: LearnerFacts.of(profiles.get(r.learner_id)) for r in resolved if r.learner_id}
    for r in resolved:
        if r.learner_id and r.event["kind"] != "VOIDED":
            profiles[r.learner_id] = learner_profile(
                profiles.get(r.learner_id), r.event["learner"], r.event["occurred_at"]
            )
    return {learner_id for learner_id, facts in before.items() if LearnerFacts.of(profiles.get(learner_id)) != facts}


def _crash_point(step: str) -> None:
    """The checkpoint's steps as the fault suite names them: intake.before_commit, .committed, .offsets_committed."""
    crash_point(f"intake.{step}")


def _settled_ids(holds: Sequence[Hold]) -> list[str]:
    """Dead letters of holds that no longer apply (a dead letter's id does not depend on its text or bytes)."""
    return [
        DeadLetterEntry(STAGE, event["source"], event["source_ref"], hold.reason_code, "", b"").dead_letter_id
        for hold in holds
        for event in hold.events
    ]


def reconcile_messages(
    messages: Sequence[Consumed],
    codec: AvroCodec,
    ledger: Ledger,
    catalog: Catalog,
    registries: Sequence[Registry],
    *,
    professions: ProfessionMap,
    redecide: Collection[Pair] = (),
    commit_offsets: Callable[[], None] | None = None,
) -> IntakeStats:
    """Reconcile one batch of consumed messages into the ledger, in one transaction (a `BatchCheckpoint`);
    `commit_offsets` (see `offsets_of`) runs once that transaction has committed.

    The new events are stored first; then every (learner, activity) they touch is re-decided from all its
    stored evidence, as are all pairs of a learner whose profession, board id or dob changed, since credit
    rules depend on them, and the pairs in `redecide`.
    """
    started = time.perf_counter()
    decoded, dead = _decode(messages, codec)
    fresh = _fresh(decoded, ledger)
    events = [event for event, _ in fresh.values()]
    identities = _identity_index(ledger, events)
    void_targets = [f"{e['source']}:{e['voids_event_id']}" for e in events if e["kind"] == "VOIDED"]
    resolved, rejections = resolve_events(events, catalog, identities, ledger.event_pairs(void_targets))
    dead += [_rejected(r, fresh[event_key(r.event)][1]) for r in rejections]
    stored = [
        StoredEvent(r.event, r.learner_id, r.activity_id, fresh[r.key][1].partition, fresh[r.key][1].offset)
        for r in resolved
    ]
    now = utcnow()
    with BatchCheckpoint(ledger, commit_offsets, on_step=_crash_point) as checkpoint:
        conn = checkpoint.conn
        checkpoint.store_events(stored)
        checkpoint.store_identities(identities.added)
        checkpoint.add_dead_letters(dead)
        cache = event_cache(ledger)
        cache.remember(stored)
        touched = {(r.learner_id, r.activity_id) for r in resolved if r.learner_id and r.activity_id}
        learner_ids = {learner_id for learner_id, _ in touched}
        profiles = ledger.profiles(conn, learner_ids | {learner_id for learner_id, _ in redecide})
        changed = _learn(profiles, resolved)
        stored_by_pair = stored_pairs(conn, learner_ids | {learner_id for learner_id, _ in redecide})
        pairs = touched | {pair for pair in stored_by_pair if pair[0] in changed} | set(redecide)
        evidence = pair_evidence(conn, cache, pairs, stored_by_pair)
        voided = ledger.voided_keys(conn, [event_key(e) for evs in evidence.values() for e in evs])
        record_ids = [
            record_id_for(lid, aid, credit_type)
            for lid, aid in pairs
            if aid in catalog.activities
            for credit_type in possible_credit_types(catalog.activities[aid])
        ]
        current = ledger.current_credits(conn, record_ids)
        facts = {learner_id: LearnerFacts.of(profiles.get(learner_id)) for learner_id, _ in pairs}
        outcome = reconcile_pairs(evidence, voided, facts, catalog, current, professions=professions)
        held = _held(outcome.held, fresh)
        credits = [
            (s, credit_record(s, catalog.activities[s.activity_id].title, profiles.get(s.learner_id, {}), now))
            for s in outcome.versions
        ]
        deliveries = [
            (s.record_id, s.version, registry.name)
            for s, record in credits
            for registry in registries
            if registry.accepts(record)
        ]
        checkpoint.add_dead_letters(held)  # the held-back credits'
        checkpoint.resolve_dead_letters(_settled_ids(outcome.settled))
        checkpoint.store_credits({lid: profiles[lid] for lid in learner_ids if lid in profiles}, credits, deliveries)
        reconciled: dict[int, int] = {}
        for message in messages:
            reconciled[message.partition] = max(reconciled.get(message.partition, 0), message.offset + 1)
        checkpoint.record_reconciled(ATTENDANCE_TOPIC, reconciled)
    # Counted once the checkpoint has committed: a batch rolled back and consumed again counts once.
    metrics.RECONCILE_BATCH_SECONDS.observe(time.perf_counter() - started)
    metrics.count_reconciled(
        len(resolved), len(decoded) - len(fresh), len(dead), ((s.credit_type, s.status) for s in outcome.versions)
    )
    metrics.count_rejections(STAGE, ((d.source, d.reason_code) for d in dead))
    return IntakeStats(
        consumed=len(messages),
        duplicates=len(decoded) - len(fresh),
        accepted=len(resolved),
        rejected=len(dead),
        held_back=len(held),
        credit_versions=len(outcome.versions),
    )


def offsets_of(consumer: Consumer, batch: Sequence[Consumed]) -> Callable[[], None]:
    """The commit of `batch`'s offsets, for the batch's checkpoint to run once the ledger holds the batch."""
    return functools.partial(consumer.commit, batch)


def redecide_unknown_professions(
    codec: AvroCodec, ledger: Ledger, catalog: Catalog, registries: Sequence[Registry], professions: ProfessionMap
) -> IntakeStats:
    """Decide again every pair held for UNKNOWN_PROFESSION: the profession mapping may list its code now
    (a changed learner profile is caught with the event that changes it)."""
    held = ledger.held_pairs(UNKNOWN_PROFESSION)
    if not held:
        return IntakeStats()
    return reconcile_messages([], codec, ledger, catalog, registries, professions=professions, redecide=held)


def reconcile_topic(
    consumer: Consumer,
    codec: AvroCodec,
    ledger: Ledger,
    catalog: Catalog,
    registries: Sequence[Registry],
    on_batch: Callable[[IntakeStats], None] | None = None,
    *,
    professions: ProfessionMap,
) -> IntakeStats:
    total = redecide_unknown_professions(codec, ledger, catalog, registries, professions)
    for batch in consumer.batches():
        stats = reconcile_messages(
            batch,
            codec,
            ledger,
            catalog,
            registries,
            professions=professions,
            commit_offsets=offsets_of(consumer, batch),
        )
        for field in vars(total):
            setattr(total, field, getattr(total, field) + getattr(stats, field))
        if on_batch:
            on_batch(total)
    log.info(
        "reconciled %d messages: %d accepted, %d duplicates, %d rejected, %d held back, %d credit versions",
        total.consumed,
        total.accepted,
        total.duplicates,
        total.rejected,
        total.held_back,
        total.credit_versions,
        extra={"stage": STAGE, "counts": asdict(total)},
    )
    return total
