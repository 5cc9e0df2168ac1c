"""Replay: put selected deliveries back in the queue, run the ordinary delivery stage for each registry
concerned, and say per registry what reached it.

Replaying is idempotent because delivery is: every registry keys a credit on `record_id:version`, so a record
it already holds comes back as a duplicate with its first receipt, never as a second credit. Deliver-stage dead
letters are marked resolved once their delivery has gone through, and opened again if it fails anew.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.ops import requeue_deliveries
from ledger.queries import (
    DeliverySelection,
    SelectedDelivery,
    dead_letter_reasons,
    delivery_dead_letter_ids,
    select_deliveries,
)
from ledger.store import Ledger, utcnow
from pipeline.config import ConfigError, Settings
from pipeline.stages import nightly
from pipeline.stages.deliver import settle_dead_letters

log = logging.getLogger(__name__)


class ReplayError(ValueError):
    """The replay request itself is wrong (an unknown registry, an empty time range)."""


@dataclass
class RegistryOutcome:
    registry: str
    selected: int
    delivered: int = 0
    failed: int = 0
    error: str | None = None
    failed_records: list[tuple[str, int]] = field(default_factory=list)
    # Why the failed ones failed this time: "REASON_CODE: the registry's answer" → how many (from dead letters).
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "selected": self.selected,
            "delivered": self.delivered,
            "failed": self.failed,
            "error": self.error,
            "failed_records": [f"{record_id}:{version}" for record_id, version in self.failed_records],
            "reasons": self.reasons,
        }


@dataclass
class ReplayResult:
    dry_run: bool
    selected: list[SelectedDelivery]
    outcomes: list[RegistryOutcome] = field(default_factory=list)

    @property
    def all_delivered(self) -> bool:
        return all(o.failed == 0 and o.error is None for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "selected": [
                {
                    "record_id": s.record_id,
                    "version": s.version,
                    "registry": s.registry,
                    "state": s.state,
                    "attempts": s.attempts,
                    "credit_type": s.credit_type,
                    "activity_id": s.activity_id,
                    "learner_id": s.learner_id,
                    "reason_codes": list(s.reason_codes),
                }
                for s in self.selected
            ],
            "outcomes": [o.as_dict() for o in self.outcomes],
            "all_delivered": self.all_delivered,
        }


def validate(settings: Settings, selection: DeliverySelection) -> None:
    configured = {r.name for r in settings.registries}
    unknown = sorted(set(selection.registries) - configured)
    if unknown:
        names = ", ".join(sorted(configured)) or "none"
        raise ReplayError(f"unknown registry {', '.join(unknown)}; configured registries: {names}")
    if selection.since and selection.until and selection.since >= selection.until:
        raise ReplayError("--since must be before --until")


def plan(settings: Settings, selection: DeliverySelection) -> list[SelectedDelivery]:
    validate(settings, selection)
    with Ledger(settings.ledger_url) as ledger:
        selected = select_deliveries(ledger, selection)
    _refuse_ambiguous_prefixes(selection.record_ids, selected)
    return selected


def _refuse_ambiguous_prefixes(prefixes: tuple[str, ...], selected: list[SelectedDelivery]) -> None:
    """A shortened record id (as the tables print it) must name one record: replaying every record that
    happens to share the prefix would re-send credits the operator did not mean."""
    for prefix in prefixes:
        matches = sorted({d.record_id for d in selected if d.record_id.startswith(prefix)})
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", …" if len(matches) > 3 else "")
            raise ReplayError(
                f"--record-id {prefix} matches {len(matches)} records ({shown}); give more of the id"
            )


def replay(
    settings: Settings,
    selection: DeliverySelection,
    *,
    dry_run: bool = False,
    on_start: Callable[[str, int], None] | None = None,
    on_done: Callable[[RegistryOutcome], None] | None = None,
) -> ReplayResult:
    """Re-deliver the selected deliveries (or, with `dry_run`, only say which they are)."""
    selected = plan(settings, selection)
    result = ReplayResult(dry_run, selected)
    if dry_run or not selected:
        return result
    by_registry: dict[str, list[SelectedDelivery]] = {}
    for delivery in selected:
        by_registry.setdefault(delivery.registry, []).append(delivery)
    configured = {r.name: r for r in settings.registries}
    missing = [f"{name}.base_url" for name in by_registry if name in configured and not configured[name].base_url]
    if missing:
        raise ConfigError(f"no endpoint configured for {', '.join(missing)}")
    for registry, deliveries in by_registry.items():
        if on_start:
            on_start(registry, len(deliveries))
        outcome = _replay_registry(settings, registry, deliveries, registry in configured)
        result.outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    return result


def _replay_registry(
    settings: Settings, registry: str, deliveries: list[SelectedDelivery], configured: bool
) -> RegistryOutcome:
    outcome = RegistryOutcome(registry, len(deliveries))
    keys = [d.key for d in deliveries]
    if not configured:
        outcome.error = f"registry {registry} is no longer configured; nothing was sent"
        outcome.failed = len(keys)
        outcome.failed_records = [(record_id, version) for record_id, version, _ in keys]
        return outcome
    with Ledger(settings.ledger_url) as ledger:
        started = utcnow()
        requeue_deliveries(ledger, keys)
        try:
            nightly.deliver(settings, registry, retry_unavailable=False)
        except Exception as err:
            # One registry's connector failing must not stop the replay of the others; the requeued
            # deliveries stay pending, so the next run picks them up.
            outcome.error = f"delivery stage failed ({type(err).__name__}); the selected deliveries stay pending"
            log.error("replay to %s failed: %s", registry, type(err).__name__)
        sent, failed = settle_dead_letters(ledger, keys, started)
        outcome.reasons = dead_letter_reasons(ledger, delivery_dead_letter_ids(ledger, failed, seen_since=started))
    outcome.delivered = len(sent)
    outcome.failed = len(failed)
    outcome.failed_records = [(record_id, version) for record_id, version, _ in failed]
    log.info("replay to %s: %d selected, %d delivered, %d failed", registry, len(keys), len(sent), len(failed))
    return outcome
