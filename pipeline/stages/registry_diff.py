"""Nightly registry diff & repair (DESIGN §1): page through what a registry holds, compare it with what the
ledger expects it to hold, repair the difference, and store the report with the run.

The ledger expects, for every record whose latest version was delivered (`sent`) to the registry: an active
holding of that version with the same amount and completion date when the record is AWARDED, no active holding
when it is REVOKED. Findings, per record id:

- missing: AWARDED in the ledger, nothing active in the registry → re-delivered;
- stale: active, but under another version → re-delivered;
- altered: the right version with another amount or date → re-delivered over it;
- duplicate: the right holding plus other active ones (a board that keys rows by licence) → the others withdrawn;
- revoked_in_ledger / unknown: active in the registry, REVOKED in the ledger or not backed by it at all →
  revoked, or only reported, as the registry's `extra_holdings` setting says.

Records whose latest delivery is still pending or failed are `unsettled`: delivery and replay own them.
Re-delivery updates the deliveries table and dead-letters failures like the delivery stage does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from connectors.http import APIError
from connectors.registries.base import Failure, Registry, RegistryEntry
from ledger.holdings import beside_expectations
from ledger.store import Expectation, Ledger
from pipeline.stages.deliver import record_results, results_of
from pipeline.stages.faults import crash_point
from reconcile.vocabulary import AWARDED, DeliveryState

log = logging.getLogger(__name__)

ExtraPolicy = Literal["report", "revoke"]
REDELIVERED = ("missing", "stale", "altered")
DRIFT = (*REDELIVERED, "duplicate", "revoked_in_ledger", "unknown")
UNSETTLED_STATES = frozenset({DeliveryState.PENDING, DeliveryState.FAILED})


@dataclass
class Findings:
    """The comparison of one registry's holdings with the ledger: record ids per finding, the active entries
    that must go (held under a record the ledger does not expect there, or not as the ledger has it), and the
    ledger's version of every record with a finding."""

    held: int = 0
    expected: int = 0
    ids: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in (*DRIFT, "unsettled")})
    unwanted: dict[str, list[RegistryEntry]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def drift(self) -> int:
        return sum(len(self.ids[name]) for name in DRIFT)


@dataclass
class RegistryDiff:
    registry: str
    findings: Findings
    repaired: list[str] = field(default_factory=list)
    repair_failed: list[str] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)
    unavailable: str | None = None

    def counts(self) -> dict[str, int]:
        return {
            "held": self.findings.held,
            "expected": self.findings.expected,
            **{name: len(ids) for name, ids in self.findings.ids.items()},
            "drift": self.findings.drift,
            "repaired": len(self.repaired),
            "repair_failed": len(self.repair_failed),
            "reported": len(self.reported),
            "unavailable": int(self.unavailable is not None),
        }

    def record_ids(self) -> dict[str, list[str]]:
        return {
            **self.findings.ids,
            "repaired": self.repaired,
            "repair_failed": self.repair_failed,
            "reported": self.reported,
        }


def compare(beside: Iterable[tuple[str, Expectation | None, list[RegistryEntry]]]) -> Findings:
    """Pure: sort every record, given once with the ledger's expectation and its active holdings, into the
    findings."""
    findings = Findings()
    for record_id, expectation, entries in beside:
        findings.held += len(entries)
        state = expectation.delivery_state if expectation else None
        if state in UNSETTLED_STATES:
            findings.ids["unsettled"].append(record_id)
            continue
        settled = expectation if state == DeliveryState.SENT else None
        if settled and settled.status == AWARDED:
            findings.expected += 1
        finding, unwanted = _judge(settled, entries)
        if finding:
            findings.ids[finding].append(record_id)
            if settled:
                findings.versions[record_id] = settled.version
        if unwanted:
            findings.unwanted[record_id] = unwanted
    for ids in findings.ids.values():
        ids.sort()
    return findings


def _judge(expectation: Expectation | None, entries: list[RegistryEntry]) -> tuple[str | None, list[RegistryEntry]]:
    if expectation is None:
        return ("unknown", entries) if entries else (None, [])
    if expectation.status != AWARDED:
        return ("revoked_in_ledger", entries) if entries else (None, [])
    if not entries:
        return "missing", []
    exact = [e for e in entries if _same(e, expectation)]
    if exact:
        rest = [e for e in entries if e is not exact[0]]
        return ("duplicate", rest) if rest else (None, [])
    if any(e.version == expectation.version for e in entries):
        return "altered", entries
    return "stale", entries


def _same(entry: RegistryEntry, expectation: Expectation) -> bool:
    return (
        entry.version == expectation.version
        and (entry.amount is None or entry.amount == expectation.amount)
        and (entry.completed_on is None or entry.completed_on == expectation.completed_on)
    )


def diff_and_repair(
    ledger: Ledger, registry: Registry, extra_holdings: ExtraPolicy = "report", batch_size: int = 100
) -> RegistryDiff:
    """Compare the registry's full holdings with the ledger and repair what the policy allows."""
    try:
        staged = ((entry.record_id, _to_json(entry)) for entry in registry.holdings() if entry.active)
        beside = beside_expectations(ledger, registry.name, staged)
        findings = compare((rid, expectation, [_from_json(e) for e in held]) for rid, expectation, held in beside)
    except APIError as err:
        # One registry down must not fail the run: its diff is reported as unavailable and tried next night.
        log.warning("registry %s diff: holdings unavailable", registry.name)
        return RegistryDiff(registry.name, Findings(), unavailable=str(err))
    diff = RegistryDiff(registry.name, findings)
    extras = [*findings.ids["revoked_in_ledger"], *findings.ids["unknown"]]
    if extra_holdings == "report":
        diff.reported = sorted(extras)
    to_fix = [*findings.ids["missing"], *findings.ids["stale"], *findings.ids["altered"]]
    if extra_holdings == "revoke":
        to_fix += findings.ids["revoked_in_ledger"]
    withdraw_for = set(to_fix) | set(findings.ids["duplicate"])
    if extra_holdings == "revoke":
        withdraw_for |= set(findings.ids["unknown"])
    failed = _withdraw(
        registry, [e for rid in sorted(withdraw_for) for e in findings.unwanted.get(rid, [])], batch_size
    )
    failed |= _redeliver(ledger, registry, [(rid, findings.versions[rid]) for rid in to_fix], batch_size)
    diff.repaired = sorted(withdraw_for - failed)
    diff.repair_failed = sorted(failed)
    log.info("registry %s diff: %s", registry.name, diff.counts())
    return diff


def _to_json(entry: RegistryEntry) -> str:
    amount = None if entry.amount is None else str(entry.amount)
    completed_on = None if entry.completed_on is None else entry.completed_on.isoformat()
    return json.dumps([entry.record_id, entry.version, entry.status, dict(entry.raw), amount, completed_on])


def _from_json(text: str) -> RegistryEntry:
    record_id, version, status, raw, amount, completed_on = json.loads(text)
    return RegistryEntry(
        record_id,
        version,
        status,
        raw,
        None if amount is None else Decimal(amount),
        None if completed_on is None else date.fromisoformat(completed_on),
    )


def _withdraw(registry: Registry, entries: Sequence[RegistryEntry], batch_size: int) -> set[str]:
    """Record ids whose withdrawal failed."""
    failed: set[str] = set()
    for start in range(0, len(entries), batch_size):
        chunk = entries[start : start + batch_size]
        keys = [{"record_id": e.record_id, "version": e.version} for e in chunk]
        results = results_of(registry.withdraw, keys, payload=chunk)
        failed |= {r.record_id for r in results if isinstance(r, Failure)}
    return failed


def _redeliver(ledger: Ledger, registry: Registry, keys: Sequence[tuple[str, int]], batch_size: int) -> set[str]:
    """Record ids whose re-delivery failed; receipts and failures go to the ledger as delivery outcomes."""
    records = sorted(ledger.credit_versions(keys), key=lambda r: r["record_id"])
    failed: set[str] = set()
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        results = results_of(registry.redeliver, chunk)
        crash_point("diff.redelivered")
        record_results(ledger, registry.name, chunk, results)
        failed |= {r.record_id for r in results if isinstance(r, Failure)}
    return failed
