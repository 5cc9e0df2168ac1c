"""Delivery stage: pending credit versions to each registry that accepts them; receipts into the ledger,
failures into dead letters (replayable), one batch at a time."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connectors.registries.base import Failure, Receipt, Registry
from ledger.store import DeadLetterEntry, DeliveryOutcome, Ledger

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed: int = 0


def deliver_pending(ledger: Ledger, registry: Registry, batch_size: int = 100) -> DeliveryStats:
    stats = DeliveryStats()
    while records := ledger.pending_deliveries(registry.name, batch_size):
        results = registry.deliver(records)
        by_id = {(r["record_id"], r["version"]): r for r in records}
        outcomes: list[DeliveryOutcome] = []
        dead: list[DeadLetterEntry] = []
        for result in results:
            if isinstance(result, Receipt):
                outcomes.append(DeliveryOutcome(result.record_id, result.version, "sent", receipt=result.receipt_id))
                stats.delivered += 1
                continue
            assert isinstance(result, Failure)
            outcomes.append(DeliveryOutcome(result.record_id, result.version, "failed", error=result.message))
            record = by_id[(result.record_id, result.version)]
            dead.append(
                DeadLetterEntry(
                    "deliver",
                    "ledger",
                    f"credit {result.record_id} v{result.version}",
                    result.reason_code,
                    result.message,
                    f"{record['record_id']}:{record['version']}".encode(),
                    registry=registry.name,
                )
            )
            stats.failed += 1
        ledger.record_deliveries(registry.name, outcomes)
        if dead:
            ledger.add_dead_letters(dead)
    log.info("registry %s: %d delivered, %d failed", registry.name, stats.delivered, stats.failed)
    return stats
