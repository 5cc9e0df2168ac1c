"""The replay deployment: re-deliver failed (or selected) credit deliveries to the registries, with the same
selection as `cmesync replay`. The work is in `pipeline.ops.replay`."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from flows.nightly import load_settings
from ledger.queries import DeliverySelection
from ledger.run_lock import run_lock
from pipeline.ops.replay import ReplayResult, replay


@flow(name="replay-failed-syncs")
def replay_failed_syncs(
    config_path: str | None = None,
    registries: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    record_ids: list[str] | None = None,
    reason_codes: list[str] | None = None,
    learner_ids: list[str] | None = None,
    dry_run: bool = False,
    endpoints: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Re-deliver the failed deliveries matching every filter given (all failed ones by default; with
    `record_ids`, those records whatever their state); with `dry_run`, only list them."""
    logger = get_run_logger()
    settings = load_settings(config_path, endpoints)
    selection = DeliverySelection(
        registries=tuple(registries or ()),
        since=since,
        until=until,
        record_ids=tuple(record_ids or ()),
        reason_codes=tuple(reason_codes or ()),
        learner_ids=tuple(learner_ids or ()),
    )
    # A replay writes deliveries as the nightly run does, so it holds the run lock; a dry run only reads.
    with nullcontext() if dry_run else run_lock(settings.ledger_url, flow_run.get_id() or str(uuid.uuid4()), "replay"):
        result = replay(settings, selection, dry_run=dry_run)
    create_markdown_artifact(
        key="replay-failed-syncs", markdown=replay_markdown(result), description="What a replay selected and delivered"
    )
    logger.info(
        "replay: %d selected, %s",
        len(result.selected),
        "dry run" if dry_run else f"all delivered: {result.all_delivered}",
    )
    return result.as_dict()


def replay_markdown(result: ReplayResult) -> str:
    lines = ["# Replay" + (" (dry run)" if result.dry_run else ""), "", f"{len(result.selected)} deliveries selected."]
    if result.outcomes:
        lines += ["", "| registry | selected | delivered | failed | note |", "|---|---:|---:|---:|---|"]
        lines += [
            f"| {o.registry} | {o.selected} | {o.delivered} | {o.failed} | {o.error or ''} |" for o in result.outcomes
        ]
    return "\n".join(lines) + "\n"
