"""Delivery stage: pending credit versions to each registry that accepts them; receipts into the ledger,
failures into dead letters (replayable), one batch at a time. A failed batch never stops the next one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.registries.base import REGISTRY_REJECTED, REGISTRY_UNAVAILABLE, Failure, Receipt, Registry
from ledger.store import DeadLetterEntry, DeliveryOutcome, Ledger
from pipeline.faults import crash_point

log = logging.getLogger(__name__)

NOT_ACCEPTED = "not accepted by this registry any more (routing changed since the record was written)"

Record = Mapping[str, Any]
Results = list[Receipt | Failure]


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0
    skipped: int = 0


def deliver_pending(ledger: Ledger, registry: Registry, batch_size: int = 100) -> DeliveryStats:
    stats = DeliveryStats()
    while records := ledger.pending_deliveries(registry.name, batch_size):
        routed = [r for r in records if registry.accepts(r)]
        if len(routed) < len(records):
            keys = {(r["record_id"], r["version"]) for r in routed}
            skipped = [
                DeliveryOutcome(r["record_id"], r["version"], "skipped", error=NOT_ACCEPTED)
                for r in records
                if (r["record_id"], r["version"]) not in keys
            ]
            ledger.record_deliveries(registry.name, skipped)
            stats.skipped += len(skipped)
        if routed:
            results = results_of(registry.deliver, routed)
            crash_point("deliver.accepted")
            delivered, failed = record_results(ledger, registry.name, routed, results)
            stats.delivered += delivered
            stats.failed += failed
    log.info(
        "registry %s: %d delivered, %d failed, %d skipped", registry.name, stats.delivered, stats.failed, stats.skipped
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
            outcomes.append(DeliveryOutcome(result.record_id, result.version, "sent", receipt=result.receipt_id))
            continue
        outcomes.append(DeliveryOutcome(result.record_id, result.version, "failed", error=result.message))
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
    ledger.record_deliveries(registry, outcomes)
    if dead:
        ledger.add_dead_letters(dead)
    return len(outcomes) - len(dead), len(dead)
