"""Decisions that come after acceptance (PARS: a certifying or state board accepts or rejects a learner record
within 24 hours of PARS taking it). Before each delivery pass, records sent within the registry's decision
window are asked about again; a rejection turns the delivery `failed` with a `REGISTRY_REJECTED` dead letter
carrying the board's reason, which `cmesync replay` sends again once the learner's data is fixed."""

from __future__ import annotations

import logging

from connectors.http import APIError
from connectors.registries.base import DecidedLater, Failure, Registry
from ledger.queries import sent_since
from ledger.store import Ledger, utcnow

log = logging.getLogger(__name__)


def late_rejections(ledger: Ledger, registry: Registry) -> list[Failure]:
    """The deliveries the registry's boards rejected since they were sent (none for a registry that decides at
    once). A registry that cannot answer now is asked again on the next run."""
    if not isinstance(registry, DecidedLater):
        return []
    sent = sent_since(ledger, registry.name, utcnow() - registry.decision_window)
    if not sent:
        return []
    try:
        rejected = registry.rejections(sent)
    except APIError as err:
        log.warning("registry %s: board decisions unavailable (%s), asked again next run", registry.name, err.status)
        return []
    log.info(
        "registry %s: %d sent records asked about, %d rejected by the board", registry.name, len(sent), len(rejected)
    )
    return rejected
