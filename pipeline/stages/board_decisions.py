"""Decisions that come after acceptance (PARS: a certifying or state board accepts or rejects a learner record
within 24 hours of PARS taking it). Before each delivery pass, records sent within the registry's decision
window are asked about again; a rejection turns the delivery `failed` with a `REGISTRY_REJECTED` dead letter
carrying the board's reason, which `cmesync replay` sends again once the learner's data is fixed."""

from __future__ import annotations

import logging
from datetime import datetime

from connectors.http import APIError
from connectors.registries.base import DecidedLater, Failure, Registry
from ledger.checkpoints import checkpoint, save_checkpoint
from ledger.queries import sent_since
from ledger.store import Ledger, utcnow

log = logging.getLogger(__name__)

POLLED = "registry:{}:board-decisions"  # checkpoint: when the registry last answered about its boards' decisions


def late_rejections(ledger: Ledger, registry: Registry) -> list[Failure]:
    """The deliveries the registry's boards rejected since they were sent (none for a registry that decides at
    once). Asked at most once per `decision_poll_interval` (the stream's delivery passes come every few seconds;
    boards take hours), the time of the last answer kept in the ledger's checkpoints. A registry that cannot
    answer now is asked again on the next pass."""
    if not isinstance(registry, DecidedLater):
        return []
    now = utcnow()
    polled = POLLED.format(registry.name)
    last = checkpoint(ledger, polled)
    if last is not None and now - datetime.fromisoformat(last) < registry.decision_poll_interval:
        return []
    sent = sent_since(ledger, registry.name, now - registry.decision_window)
    if not sent:
        return []
    try:
        rejected = registry.rejections(sent)
    except APIError as err:
        log.warning("registry %s: board decisions unavailable (%s), asked again next pass", registry.name, err.status)
        return []
    save_checkpoint(ledger, polled, now.isoformat())
    log.info(
        "registry %s: %d sent records asked about, %d rejected by the board", registry.name, len(sent), len(rejected)
    )
    return rejected
