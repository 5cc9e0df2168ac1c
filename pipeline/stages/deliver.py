"""Delivery stage: pending credit versions to each registry that accepts them; receipts into the ledger,
failures into dead letters (replayable), one batch at a time. A failed batch never stops the next one.

Deliveries that failed because the registry was unavailable go again on their own: each delivery pass first
puts back in the queue those whose next retry is due (`retry_delays` after their latest failure, once per
delay), and afterwards resolves the dead letters of those that went through, as a replay does."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.registries.base import Failure, Receipt, Registry
from ledger.dead_letters import DeadLetterEntry, add_dead_letters
from ledger.deliveries import DeliveryOutcome, pending_deliveries, record_deliveries
from ledger.ops import requeue_deliveries, set_dead_letters_resolved
from ledger.queries import DeliveryKey, delivery_dead_letter_ids, delivery_states, unavailable_deliveries
from ledger.store import Ledger, utcnow
from pipeline import metrics
from pipeline.stages.board_decisions import late_rejections
from pipeline.stages.faults import crash_point
from reconcile.vocabulary import REGISTRY_REJECTED, REGISTRY_UNAVAILABLE, DeliveryState

log = logging.getLogger(__name__)

NOT_ACCEPTED = "not accepted by this registry any more (routing changed since the record was written)"

Record = Mapping[str, Any]
Results = list[Receipt | Failure]


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0  # earlier REGISTRY_UNAVAILABLE failures sent again by this pass


def deliver_with_retries(
    ledger: Ledger, registry: Registry, retry_delays: Sequence[timedelta], batch_size: int = 100
) -> DeliveryStats:
    """The delivery pass of the nightly run and the stream: the boards' late rejections of what was sent (they
    count as failed deliveries), due retries of unavailable-registry failures, then everything pending, then the
    retried deliveries' dead letters settled."""
    started = utcnow()
    rejected_later = late_rejections(ledger, registry)
    keys = [{"record_id": f.record_id, "version": f.version} for f in rejected_later]
    record_results(ledger, registry.name, keys, list(rejected_later))
    retried = due_retries(ledger, registry.name, retry_delays, started)
    requeue_deliveries(ledger, retried)
    stats = deliver_pending(ledger, registry, batch_size)
    stats.retried = len(retried)
    stats.failed += len(rejected_later)
    if retried:
        sent, _ = settle_dead_letters(ledger, retried, started)
        log.info("registry %s: %d earlier failures retried, %d went through", registry.name, len(retried), len(sent))
    return stats


def due_retries(ledger: Ledger, registry: str, retry_delays: Sequence[timedelta], now: datetime) -> list[DeliveryKey]:
    """Unavailable-registry failures whose next automatic retry is due: after the n-th failure, delay n-1 from
    it; after more failures than delays, none (an operator's replay). A requeued delivery still pending (a run
    stopped before sending it) is due at once."""
    due: list[DeliveryKey] = []
    for key, state, failures, last_failed in unavailable_deliveries(ledger, registry):
        if state == DeliveryState.PENDING or (
            failures <= len(retry_delays) and now >= last_failed + retry_delays[failures - 1]
        ):
            due.append(key)
    return due


def settle_dead_letters(
    ledger: Ledger, keys: Sequence[DeliveryKey], started: datetime
) -> tuple[list[DeliveryKey], list[DeliveryKey]]:
    """After sending `keys` again (a replay, an automatic retry): the dead letters of those now sent are
    resolved, those that failed again since `started` are open again. Returns (sent, failed)."""
    states = delivery_states(ledger, keys)
    sent = [k for k in keys if states.get(k) == DeliveryState.SENT]
    failed = [k for k in keys if states.get(k) != DeliveryState.SENT]
    set_dead_letters_resolved(ledger, delivery_dead_letter_ids(ledger, sent))
    set_dead_letters_resolved(ledger, delivery_dead_letter_ids(ledger, failed, seen_since=started), False)
    return sent, failed


def deliver_pending(ledger: Ledger, registry: Registry, batch_size: int = 100) -> DeliveryStats:
    stats = DeliveryStats()
    while records := pending_deliveries(ledger, registry.name, batch_size):
        routed = [r for r in records if registry.accepts(r)]
        if len(routed) < len(records):
            keys = {(r["record_id"], r["version"]) for r in routed}
            skipped = [
                DeliveryOutcome(r["record_id"], r["version"], DeliveryState.SKIPPED, error=NOT_ACCEPTED)
                for r in records
                if (r["record_id"], r["version"]) not in keys
            ]
            record_deliveries(ledger, registry.name, skipped)
            stats.skipped += len(skipped)
            metrics.count_deliveries(registry.name, 0, 0, len(skipped))
        if routed:
            results = results_of(registry.deliver, routed)
            crash_point("deliver.accepted")
            delivered, failed = record_results(ledger, registry.name, routed, results)
            stats.delivered += delivered
            stats.failed += failed
            metrics.count_deliveries(registry.name, delivered, failed, 0)
    log.info(
        "registry %s: %d delivered, %d failed, %d skipped",
        registry.name,
        stats.delivered,
        stats.failed,
        stats.skipped,
        extra={"stage": "deliver", "registry": registry.name, "counts": asdict(stats)},
    )
    return stats


def results_of(call: Callable[[Any], Results], records: Sequence[Record], payload: Any = None) -> Results:
    """The registry's answer for each of `records`, in order, from `call(payload)` (default: the records
    themselves); a record it did not answer for is a failure."""
    try:
        results = call(records if payload is None else payload)
    except Exception as err:
        # A registry answering outside its contract (malformed JSON, missing fields) fails this batch only;
        # the type is logged, not the message, which may quote the payload.
        log.error("registry call failed unexpectedly: %s", type(err).__name__)
        message = f"unexpected registry answer: {type(err).__name__}"
        results = [Failure(r["record_id"], r["version"], REGISTRY_UNAVAILABLE, message) for r in records]
    by_key = {(result.record_id, result.version): result for result in results}
    return [
        by_key.get((r["record_id"], r["version"]))
        or Failure(r["record_id"], r["version"], REGISTRY_REJECTED, "the registry returned no result for it")
        for r in records
    ]


def record_results(ledger: Ledger, registry: str, records: Sequence[Record], results: Results) -> tuple[int, int]:
    """Receipts → deliveries `sent`; failures → deliveries `failed` plus a dead letter. (delivered, failed)."""
    outcomes: list[DeliveryOutcome] = []
    dead: list[DeadLetterEntry] = []
    for record, result in zip(records, results, strict=True):
        if isinstance(result, Receipt):
            outcomes.append(
                DeliveryOutcome(result.record_id, result.version, DeliveryState.SENT, receipt=result.receipt_id)
            )
            continue
        outcomes.append(DeliveryOutcome(result.record_id, result.version, DeliveryState.FAILED, error=result.message))
        dead.append(
            DeadLetterEntry(
                "deliver",
                "ledger",
                f"credit {result.record_id} v{result.version}",
                result.reason_code,
                result.message,
                f"{record['record_id']}:{record['version']}".encode(),
                registry=registry,
            )
        )
    record_deliveries(ledger, registry, outcomes)
    if dead:
        add_dead_letters(ledger, dead)
    return len(outcomes) - len(dead), len(dead)
