"""Retrying dead letters, each by the route that makes sense for its stage:

- normalise: the stored source record goes through its source connector's `to_events` again (after a connector
  or config fix); what now normalises is published to cme.attendance.v1 and the dead letter is resolved.
- reconcile: the payload is the original Kafka message; it is published again to cme.attendance.v1 (after a
  catalog fix, say). It is resolved once the reconcile stage has taken the event into the ledger.
- deliver: a replay of that delivery (pipeline/ops/replay.py).

After republishing, the rest of the pipeline runs once (reconcile, publish, deliver), so the operator sees the
outcome now rather than after the next nightly run. Everything here is as idempotent as the pipeline it feeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.sources.base import RawRecord, Rejection, Source
from ledger.ops import set_dead_letters_resolved
from ledger.queries import (
    DELIVER_STAGE,
    DeadLetterFilter,
    DeadLetterRow,
    DeliverySelection,
    dead_letter_payload,
    dead_letters,
    delivery_key_of,
    delivery_states,
)
from ledger.store import Ledger, utcnow
from pipeline.config import Settings
from pipeline.factory import build_sources, codec_for
from pipeline.kafka.interface import Message, publish
from pipeline.kafka.io import make_producer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.ops.replay import ReplayResult, replay
from pipeline.stages import nightly
from pipeline.stages.pull import learner_key
from reconcile.vocabulary import SCHEMA_INVALID, DeliveryState
from schemas.codec import AvroCodec, SchemaInvalid

NORMALISE, RECONCILE = "normalise", "reconcile"
RESOLVED, FAILED, SKIPPED = "resolved", "failed", "skipped"


@dataclass(frozen=True)
class RetryOutcome:
    dead_letter_id: str
    stage: str
    outcome: str  # resolved, failed or skipped
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {
            "dead_letter_id": self.dead_letter_id,
            "stage": self.stage,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass
class RetryResult:
    outcomes: list[RetryOutcome] = field(default_factory=list)
    replays: list[ReplayResult] = field(default_factory=list)

    @property
    def all_resolved(self) -> bool:
        return all(o.outcome == RESOLVED for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcomes": [o.as_dict() for o in self.outcomes],
            "all_resolved": self.all_resolved,
            "replays": [r.as_dict() for r in self.replays],
        }


@dataclass
class _Republish:
    """Messages to put back on cme.attendance.v1, and which dead letter each event came from."""

    messages: list[Message] = field(default_factory=list)
    normalised: list[DeadLetterRow] = field(default_factory=list)
    awaited: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # dead letter id -> event keys


def retry_dead_letters(settings: Settings, rows: list[DeadLetterRow]) -> RetryResult:
    result = RetryResult()
    started = utcnow()
    pending = [r for r in rows if not r.resolved]
    result.outcomes += [
        RetryOutcome(r.dead_letter_id, r.stage, SKIPPED, "already resolved") for r in rows if r.resolved
    ]
    republish = _Republish()
    pipeline_rows = [r for r in pending if r.stage in (NORMALISE, RECONCILE)]
    if pipeline_rows:
        codec = codec_for(settings, "attendance_event")
        sources = {s.name: s for s in build_sources(settings)}
        with Ledger(settings.ledger_url) as ledger:
            for row in pipeline_rows:
                payload = dead_letter_payload(ledger, row.dead_letter_id)
                if row.stage == NORMALISE:
                    failure = _renormalise(row, payload, sources.get(row.source), codec, republish)
                else:
                    failure = _reread(row, payload, codec, republish)
                if failure:
                    result.outcomes.append(failure)
        result.outcomes += _publish_and_process(settings, republish, started)
    deliver_rows = [r for r in pending if r.stage == DELIVER_STAGE]
    if deliver_rows:
        result.outcomes += _replay_deliveries(settings, deliver_rows, result)
    result.outcomes += [
        RetryOutcome(r.dead_letter_id, r.stage, SKIPPED, f"no retry route for stage {r.stage}")
        for r in pending
        if r.stage not in (NORMALISE, RECONCILE, DELIVER_STAGE)
    ]
    return result


def _raw_data(payload: bytes) -> Any:
    """A source record as the connector produced it: JSON for API sources, the verbatim bytes otherwise."""
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def _renormalise(
    row: DeadLetterRow, payload: bytes, source: Source | None, codec: AvroCodec, republish: _Republish
) -> RetryOutcome | None:
    if source is None:
        return RetryOutcome(row.dead_letter_id, row.stage, SKIPPED, f"source {row.source} is not configured")
    messages: list[Message] = []
    keys: list[tuple[str, str]] = []
    for item in source.to_events(RawRecord(row.source_ref, _raw_data(payload))):
        if isinstance(item, Rejection):
            return RetryOutcome(row.dead_letter_id, row.stage, FAILED, f"{item.reason_code}: {item.reason}")
        try:
            messages.append((learner_key(item["learner"]), codec.encode(item)))
        except SchemaInvalid as err:
            return RetryOutcome(row.dead_letter_id, row.stage, FAILED, f"{SCHEMA_INVALID}: {err.reason}")
        keys.append((item["source"], item["event_id"]))
    republish.messages += messages
    republish.normalised.append(row)
    republish.awaited[row.dead_letter_id] = keys
    return None


def _reread(row: DeadLetterRow, payload: bytes, codec: AvroCodec, republish: _Republish) -> RetryOutcome | None:
    try:
        event = codec.decode(payload)
    except SchemaInvalid as err:
        detail = f"the message itself does not decode ({err.reason}); fix its producer, there is nothing to retry"
        return RetryOutcome(row.dead_letter_id, row.stage, SKIPPED, detail)
    republish.messages.append((learner_key(event["learner"]), payload))
    republish.awaited[row.dead_letter_id] = [(event["source"], event["event_id"])]
    return None


def _publish_and_process(settings: Settings, republish: _Republish, started: datetime) -> list[RetryOutcome]:
    if not republish.messages:
        return []
    producer = make_producer(settings.kafka_bootstrap, backend=settings.kafka_backend, security=settings.kafka_security)
    try:
        publish(producer, ATTENDANCE_TOPIC, republish.messages)
    finally:
        producer.close()
    with Ledger(settings.ledger_url) as ledger:
        # A re-normalised record is done once its events are back on the topic: from there on, anything
        # that goes wrong is a reconcile dead letter of its own.
        set_dead_letters_resolved(ledger, [r.dead_letter_id for r in republish.normalised])
        process_downstream(settings)
        outcomes: list[RetryOutcome] = []
        normalised = {r.dead_letter_id for r in republish.normalised}
        for dead_letter_id, keys in republish.awaited.items():
            if dead_letter_id in normalised:
                outcomes.append(RetryOutcome(dead_letter_id, NORMALISE, RESOLVED, f"{len(keys)} event(s) published"))
                continue
            if ledger.known_event_keys(keys) == set(keys):
                set_dead_letters_resolved(ledger, [dead_letter_id])
                outcomes.append(RetryOutcome(dead_letter_id, RECONCILE, RESOLVED, "event reconciled into the ledger"))
            else:
                outcomes.append(RetryOutcome(dead_letter_id, RECONCILE, FAILED, _latest_reason(ledger, keys, started)))
        return outcomes


def _latest_reason(ledger: Ledger, keys: list[tuple[str, str]], started: datetime) -> str:
    sources = tuple(sorted({source for source, _ in keys}))
    raised = dead_letters(ledger, DeadLetterFilter(stages=(RECONCILE,), sources=sources, since=started))
    if raised:
        return f"rejected again: {raised[0].reason_code}: {raised[0].reason}"
    return "not in the ledger after reconciling; see `cmesync deadletters list --stage reconcile`"


def process_downstream(settings: Settings) -> None:
    """What the nightly run does after the pull: reconcile, publish, deliver to every registry, publish the
    delivery dead letters."""
    nightly.reconcile(settings)
    nightly.publish(settings)
    for registry in settings.registries:
        nightly.deliver(settings, registry.name, retry_unavailable=False)
    nightly.publish(settings)


def _replay_deliveries(settings: Settings, rows: list[DeadLetterRow], result: RetryResult) -> list[RetryOutcome]:
    outcomes: list[RetryOutcome] = []
    wanted: dict[str, list[tuple[DeadLetterRow, str, int]]] = {}
    with Ledger(settings.ledger_url) as ledger:
        for row in rows:
            pair = delivery_key_of(row.source_ref, dead_letter_payload(ledger, row.dead_letter_id))
            if pair is None or row.registry is None:
                outcomes.append(RetryOutcome(row.dead_letter_id, row.stage, SKIPPED, "no delivery named in it"))
                continue
            wanted.setdefault(row.registry, []).append((row, *pair))
        states = delivery_states(
            ledger, [(rid, version, reg) for reg, items in wanted.items() for _, rid, version in items]
        )
    for registry, items in wanted.items():
        live = [
            (row, rid, version)
            for row, rid, version in items
            if states.get((rid, version, registry)) != DeliveryState.SUPERSEDED
        ]
        outcomes += [
            RetryOutcome(
                row.dead_letter_id, row.stage, SKIPPED, "a newer version of this credit replaced it: resolve it"
            )
            for row, rid, version in items
            if states.get((rid, version, registry)) == DeliveryState.SUPERSEDED
        ]
        if not live:
            continue
        selection = DeliverySelection(registries=(registry,), record_ids=tuple(sorted({rid for _, rid, _ in live})))
        replayed = replay(settings, selection)
        result.replays.append(replayed)
        failed = {pair for outcome in replayed.outcomes for pair in outcome.failed_records}
        for row, rid, version in live:
            if (rid, version) in failed:
                outcomes.append(
                    RetryOutcome(row.dead_letter_id, row.stage, FAILED, f"delivery to {registry} failed again")
                )
            else:
                outcomes.append(RetryOutcome(row.dead_letter_id, row.stage, RESOLVED, f"delivered to {registry}"))
    return outcomes
