"""The nightly at-risk compliance list (`pipeline.reports.transcript.compliance_summary`, the run report's section) sent
to each employer HR endpoint configured with `at_risk_notices = true`, as signed notices of its own staff
(`connectors.registries.hr_at_risk`). One notice per learner, cycle and day: the ledger remembers what each
endpoint received (`ledger.notices`), so a rerun the same day sends nothing, and the next day sends again.

A roster line without an employee id cannot reach HR (it is how HR knows its staff); such lines, and staff of
another employer, are counted, not sent. Logs carry counts and registry names only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date

from connectors.http import APIError
from connectors.registries.employer_hr import EmployerHrConfig, EmployerHrRegistry
from connectors.registries.hr_at_risk import AtRiskNotice
from ledger.notices import record_notices, sent_notices
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.factory import build_registry
from pipeline.reports.transcript import AtRisk, ComplianceSummary, compliance_summary, load_inputs
from pipeline.stages.faults import crash_point
from reconcile.catalog import CatalogError
from reconcile.compliance.evaluate import OVERDUE
from reconcile.compliance.profiles import ProfileError
from reconcile.compliance.roster import RosterError

logger = logging.getLogger(__name__)


@dataclass
class NoticeStats:
    sent: int = 0
    already_sent: int = 0  # received on an earlier run today: not sent again
    failed: int = 0
    not_staff: int = 0  # at risk, but not on this endpoint's staff roster (or no employee id)

    def counts(self) -> dict[str, int]:
        return asdict(self)


def notice_of(at_risk: AtRisk, as_of: date) -> AtRiskNotice:
    transcript = at_risk.transcript
    return AtRiskNotice(
        at_risk.entry.employee_id,
        at_risk.entry.employer,
        transcript.profile.id,
        transcript.cycle.start,
        transcript.cycle.end,
        as_of,
        "overdue" if transcript.status == OVERDUE else "at risk",
        transcript.days_to_deadline,
        tuple((r.requirement.name, r.missing) for r in transcript.missing),
    )


def _notify(
    ledger: Ledger, registry: EmployerHrRegistry, config: EmployerHrConfig, summary: ComplianceSummary
) -> NoticeStats:
    staff = registry.roster.employee_ids
    notices = [notice_of(a, summary.as_of) for a in summary.at_risk if a.entry.employee_id in staff]
    stats = NoticeStats(not_staff=len(summary.at_risk) - len(notices))
    received = sent_notices(ledger, registry.name, [n.notice_id for n in notices])
    todo: Sequence[AtRiskNotice] = [n for n in notices if n.notice_id not in received]
    stats.already_sent = len(notices) - len(todo)
    results = registry.send_at_risk(todo, config.batch_size) if todo else []
    crash_point("notices.received")
    record_notices(ledger, registry.name, {r.notice_id: r.receipt_id for r in results if r.receipt_id})
    stats.sent = sum(1 for r in results if r.sent)
    stats.failed = len(results) - stats.sent
    if errors := [r.error for r in results if r.error]:
        logger.error("%s: %d at-risk notices not received, first: %s", registry.name, len(errors), errors[0])
    logger.info("%s: at-risk notices %s", registry.name, stats.counts())
    return stats


def notify_at_risk(settings: Settings, as_of: date) -> dict[str, NoticeStats]:
    """Per HR registry with notices on, what was sent. A roster or profile that cannot be read sends nothing:
    the run report's compliance section names the problem."""
    configs = [r for r in settings.registries if isinstance(r, EmployerHrConfig) and r.at_risk_notices]
    if not configs:
        return {}
    try:
        inputs = load_inputs(settings)
    except (ProfileError, RosterError, CatalogError, APIError) as err:
        logger.warning("at-risk notices not sent: %s", err)
        return {}
    with Ledger(settings.ledger_url) as ledger:
        summary = compliance_summary(ledger, inputs, as_of)
        found: dict[str, NoticeStats] = {}
        for config in configs:
            registry = build_registry(config)
            assert isinstance(registry, EmployerHrRegistry)
            found[config.name] = _notify(ledger, registry, config, summary)
        return found
