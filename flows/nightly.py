"""The nightly reconciliation (DESIGN §1): pull → normalise → Kafka → reconcile → ledger → credit stream →
registries. Each task is one stage over whole pages/batches; the work is in `pipeline.stages.nightly`."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed, State

from ledger.run_lock import run_lock
from ledger.runs import finish_run, start_run
from ledger.store import Ledger, utcnow
from pipeline.config import ConfigError, Settings
from pipeline.outcome import RunOutcome, outcome_of
from pipeline.reports.metrics_export import export_run
from pipeline.reports.run_report import compliance_section, publish_run_report
from pipeline.reports.summary import RunSummary
from pipeline.stages import nightly
from pipeline.stages.at_risk_notices import notify_at_risk
from pipeline.stages.broker_loss import Assessment, BrokerDataLost, resolve_findings
from pipeline.stages.deliver import DeliveryStats
from pipeline.stages.pull import PullStats
from pipeline.stages.reconcile import IntakeStats


def load_settings(config_path: str | None, endpoints: dict[str, str] | None) -> Settings:
    settings = Settings.load(Path(config_path) if config_path else None).with_endpoints(endpoints or {})
    if missing := settings.missing_endpoints():
        raise ConfigError(f"no endpoint configured for {', '.join(missing)}: set them or run with --embedded")
    return settings


@task(name="check-broker", cache_policy=NO_CACHE)
def check_broker_task(settings: Settings, broker_started_empty: bool = False) -> Assessment:
    assessment = nightly.check_broker(settings)
    # A broker started empty for this run holds nothing yet: that is expected, not an error, unless events were
    # lost before the ledger reconciled them.
    expected = broker_started_empty and not assessment.unreconciled_lost
    for loss in assessment.losses:
        if expected:
            get_run_logger().info("broker started empty: %s", loss.description)
        else:
            get_run_logger().error("broker lost data: %s", loss.description)
    return assessment


@task(name="pull-source", cache_policy=NO_CACHE)
def pull_task(settings: Settings, source_name: str) -> PullStats:
    logger = get_run_logger()
    stats = nightly.pull(
        settings,
        source_name,
        lambda s: logger.info("%s: page %d, %d events", source_name, s.pages, s.events, extra={"counts": asdict(s)}),
    )
    return stats


@task(name="reconcile-attendance", cache_policy=NO_CACHE)
def reconcile_task(settings: Settings) -> IntakeStats:
    logger = get_run_logger()
    return nightly.reconcile(settings, lambda s: logger.info("reconciled %d messages so far", s.consumed))


@task(name="publish-outbox", cache_policy=NO_CACHE)
def publish_task(settings: Settings) -> tuple[int, int]:
    return nightly.publish(settings)


@task(name="deliver-registry", cache_policy=NO_CACHE)
def deliver_task(settings: Settings, registry_name: str) -> DeliveryStats:
    return nightly.deliver(settings, registry_name)


@task(name="notify-at-risk", cache_policy=NO_CACHE)
def notify_at_risk_task(settings: Settings) -> dict[str, int]:
    """The at-risk compliance list to the HR endpoints that take it; returns failed notices per registry."""
    return {name: stats.failed for name, stats in notify_at_risk(settings, utcnow().date()).items()}


@task(name="registry-diff", cache_policy=NO_CACHE)
def registry_diff_task(settings: Settings, registry_name: str, run_id: str) -> dict[str, int]:
    return nightly.registry_diff(settings, registry_name, run_id)


def resolve_broker_findings(settings: Settings) -> None:
    with Ledger(settings.ledger_url) as ledger:
        resolve_findings(ledger)


@flow(name="nightly-reconciliation")
def nightly_reconciliation(
    config_path: str | None = None, endpoints: dict[str, str] | None = None, broker_started_empty: bool = False
) -> dict[str, Any] | State:
    """Run every stage once over what is new since the last run; return the run's counts, or a Failed state
    carrying them (and naming what failed, pipeline/outcome.py) when a delivery or a registry diff failed.
    `broker_started_empty`: the broker was started for this run (`cmesync run --embedded`), so finding it empty
    is no loss; only events it lost before the ledger reconciled them would be."""
    settings = load_settings(config_path, endpoints)
    run_id = flow_run.get_id() or str(uuid.uuid4())
    # One run at a time per ledger: a second one (cron overlapping a manual run) fails here, naming the first.
    with run_lock(settings.ledger_url, run_id, "nightly"):
        nightly.prepare(settings)
        try:
            return _run(settings, run_id, config_path, broker_started_empty)
        finally:
            export_run(settings)


def _run(
    settings: Settings, run_id: str, config_path: str | None, broker_started_empty: bool
) -> dict[str, Any] | State:
    logger = get_run_logger()
    with Ledger(settings.ledger_url) as ledger:
        start_run(ledger, run_id, "nightly")
    summary = RunSummary()
    delivery_failed: dict[str, int] = {}
    diffs: dict[str, dict[str, int]] = {}
    notices_failed: dict[str, int] = {}
    try:
        # Before pulling: a broker that forgot events rewinds the sources, so this run reads them again.
        lost = check_broker_task(settings, broker_started_empty)
        for source in settings.sources:
            pulled = pull_task(settings, source.name)
            summary.records_read += pulled.records
            summary.events_published += pulled.events
            summary.rejected_at_normalise += pulled.rejected
        intake = reconcile_task(settings)
        summary.duplicates = intake.duplicates
        summary.rejected_at_reconcile = intake.rejected
        summary.credit_versions = intake.credit_versions
        summary.credits_published, dead_published = publish_task(settings)
        for registry in settings.registries:
            delivered = deliver_task(settings, registry.name)
            summary.delivered += delivered.delivered
            summary.delivery_failed += delivered.failed
            delivery_failed[registry.name] = delivered.failed
        for registry in settings.registries:
            diff = registry_diff_task(settings, registry.name, run_id)
            diffs[registry.name] = diff
            summary.registry_drift += diff["drift"]
            summary.registry_repaired += diff["repaired"]
        notices_failed = notify_at_risk_task(settings)
        # Delivery failures are dead letters too; publish them in the same run.
        summary.dead_letters_published = dead_published + publish_task(settings)[1]
        summary.credits_awarded = nightly.credits_awarded(settings)
        # Whatever a recovery rewound (this run's check or a `cmesync recover`) has now been pulled and reconciled.
        resolve_broker_findings(settings)
        if lost.lost and broker_started_empty and not lost.unreconciled_lost:
            logger.info(
                "the broker was started empty for this run: credit stream rebuilt from the ledger (%d records)",
                lost.credits_to_republish,
            )
        elif lost.lost:
            # Recovered in this run (re-pulled, reconciled, stream rebuilt), and still a failure: never silent.
            raise BrokerDataLost("; ".join(loss.description for loss in lost.losses))
    except BaseException as err:
        # Recorded as failed, then re-raised: Prefect marks the flow run Failed with the error itself.
        failed = outcome_of(delivery_failed, diffs, f"{type(err).__name__}: {err}", config_path, notices_failed)
        with Ledger(settings.ledger_url) as ledger:
            finish_run(ledger, run_id, failed.status, summary.counts())
        try:
            _report(settings, run_id, failed)
        except Exception as report_error:
            # The run's own error matters more; the missing report is named, not hidden.
            logger.error("run %s: its report could not be written: %s", run_id, report_error)
        raise
    outcome = outcome_of(delivery_failed, diffs, config_path=config_path, notices_failed=notices_failed)
    with Ledger(settings.ledger_url) as ledger:
        finish_run(ledger, run_id, outcome.status, summary.counts())
    _report(settings, run_id, outcome)
    logger.info("run %s %s: %s", run_id, outcome.status, summary.counts(), extra={"counts": summary.counts()})
    if not outcome.ok:
        # A Failed state (with the counts as its result) so a Prefect automation on failed runs fires.
        logger.error("%s", outcome.message)
        return Failed(message=outcome.message, data=summary.counts())
    return summary.counts()


def _report(settings: Settings, run_id: str, outcome: RunOutcome) -> None:
    compliance = compliance_section(settings, utcnow().date())
    markdown, html_report = publish_run_report(
        settings.ledger_url,
        run_id,
        "Nightly reconciliation",
        settings.reports_dir,
        compliance=compliance,
        outcome=outcome,
    )
    create_markdown_artifact(
        key="nightly-reconciliation-summary",
        markdown=markdown,
        description=f"Report of one nightly reconciliation run (HTML copy: {html_report})",
    )
