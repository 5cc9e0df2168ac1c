"""How the `cmesync` commands print for a person: rich tables on stdout. (`--json` bypasses all of this.)
Only ids, names, codes and counts are printed — a dead letter's payload only through `payload_text`, which
`deadletters show --reveal` alone calls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from rich.console import Console
from rich.table import Table

from ledger.queries import DeadLetterRow, SelectedDelivery
from pipeline.check import FAILED, OK, CheckResult
from pipeline.replay import ReplayResult
from pipeline.retry import RESOLVED, RetryResult
from pipeline.status import Status
from pipeline.summary import LABELS

out = Console()

OUTCOME_STYLE = {OK: "green", RESOLVED: "green", FAILED: "red"}


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def counts_table(title: str, counts: dict[str, int]) -> None:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(LABELS.get(key, key.replace("_", " ")), str(value))
    out.print(table)


def deliveries_table(title: str, deliveries: Sequence[SelectedDelivery]) -> None:
    table = Table(title=title)
    for column in ("registry", "record id", "v", "state", "attempts", "credit type", "activity", "reasons", "since"):
        table.add_column(column, justify="right" if column in ("v", "attempts") else "left")
    for d in deliveries:
        table.add_row(
            d.registry,
            d.record_id,
            str(d.version),
            d.state,
            str(d.attempts),
            d.credit_type,
            d.activity_id,
            ", ".join(d.reason_codes) or "-",
            _when(d.updated_at),
        )
    out.print(table)


def replay_result(result: ReplayResult) -> None:
    if result.dry_run:
        deliveries_table(f"replay --dry-run: {len(result.selected)} deliveries would be sent", result.selected)
        return
    if not result.selected:
        out.print("nothing to replay: no delivery matches")
        return
    table = Table(title="replay")
    for column in ("registry", "selected", "delivered", "failed", "note"):
        table.add_column(column, justify="left" if column in ("registry", "note") else "right")
    for o in result.outcomes:
        style = "green" if not o.failed and not o.error else "red"
        table.add_row(o.registry, str(o.selected), str(o.delivered), str(o.failed), o.error or "", style=style)
    out.print(table)


def dead_letters_table(rows: Sequence[DeadLetterRow]) -> None:
    table = Table(title=f"{len(rows)} dead letters")
    for column in ("id", "stage", "reason code", "source", "source ref", "registry", "tries", "last seen", "resolved"):
        table.add_column(column, justify="right" if column == "tries" else "left", overflow="fold")
    for r in rows:
        table.add_row(
            r.dead_letter_id[:8],
            r.stage,
            r.reason_code,
            r.source,
            r.source_ref,
            r.registry or "-",
            str(r.attempts),
            _when(r.last_seen),
            _when(r.resolved_at) if r.resolved else "no",
        )
    out.print(table)


def dead_letter_detail(row: DeadLetterRow) -> None:
    table = Table(show_header=False, title=f"dead letter {row.dead_letter_id}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for label, value in (
        ("stage", row.stage),
        ("reason code", row.reason_code),
        ("reason", row.reason),
        ("source", row.source),
        ("source position", row.source_ref),
        ("registry", row.registry or "-"),
        ("attempts", str(row.attempts)),
        ("first seen", _when(row.first_seen)),
        ("last seen", _when(row.last_seen)),
        ("published to cme.deadletter.v1", _when(row.published_at)),
        ("resolved", _when(row.resolved_at) if row.resolved else "no"),
        ("payload", f"{row.payload_bytes} bytes, hidden (may hold PII): add --reveal to print it"),
    ):
        table.add_row(label, value)
    out.print(table)


def payload_text(payload: bytes) -> str:
    """The payload as a person can read it: indented JSON, else text, else hex (binary Avro)."""
    try:
        return json.dumps(json.loads(payload), indent=2, sort_keys=True)
    except ValueError:
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.hex(" ", 2)


def retry_result(result: RetryResult) -> None:
    table = Table(title="dead-letter retry")
    for column in ("id", "stage", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    for o in result.outcomes:
        table.add_row(o.dead_letter_id[:8], o.stage, o.outcome, o.detail, style=OUTCOME_STYLE.get(o.outcome))
    out.print(table)


def status(report: Status) -> None:
    runs = Table(title="last runs")
    for column in ("run id", "flow", "status", "started (UTC)", "duration", "read", "credits", "delivered", "failed"):
        runs.add_column(column, justify="right" if column in ("read", "credits", "delivered", "failed") else "left")
    for run in report.runs:
        runs.add_row(
            run.run_id[:8],
            run.flow,
            run.status,
            _when(run.started_at),
            f"{run.duration_s:.1f} s" if run.duration_s is not None else "running",
            str(run.counts.get("records_read", run.counts.get("consumed", "-"))),
            str(run.counts.get("credit_versions", "-")),
            str(run.counts.get("delivered", "-")),
            str(run.counts.get("delivery_failed", "-")),
            style="red" if run.status == "failed" else None,
        )
    out.print(runs if report.runs else "no runs recorded yet")

    lag = Table(title="consumer lag (group committed offset vs end of partition)")
    for column in ("topic", "partition", "committed", "end", "lag"):
        lag.add_column(column, justify="left" if column == "topic" else "right")
    for p in report.lag:
        committed = "-" if p.committed is None else str(p.committed)
        lag.add_row(p.topic, str(p.partition), committed, str(p.end), str(p.lag), style="yellow" if p.lag else None)
    out.print(lag if not report.lag_error else f"consumer lag unknown: {report.lag_error}")

    backlog = Table(title="deliveries per registry")
    states = sorted({state for counts in report.backlog.values() for state in counts})
    backlog.add_column("registry")
    for state in states:
        backlog.add_column(state, justify="right")
    for registry, counts in sorted(report.backlog.items()):
        backlog.add_row(registry, *(str(counts.get(state, 0)) for state in states))
    out.print(backlog if report.backlog else "no deliveries recorded yet")

    if not report.oldest_unresolved:
        out.print("[green]no unresolved dead letters[/]")
        return
    unresolved = Table(title="unresolved dead letters")
    for column in ("stage", "reason code", "count"):
        unresolved.add_column(column, justify="right" if column == "count" else "left")
    for stage, code, count in report.unresolved:
        unresolved.add_row(stage, code, str(count))
    out.print(unresolved)
    oldest = report.oldest_unresolved
    out.print(
        f"oldest unresolved dead letter: {oldest.dead_letter_id[:8]} ({oldest.stage}, {oldest.reason_code}, "
        f"{oldest.source} {oldest.source_ref}), first seen {_when(oldest.first_seen)} UTC"
    )


def checks(results: Sequence[CheckResult]) -> None:
    table = Table(title="config check")
    for column in ("component", "result", "detail"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(r.component, r.outcome, r.detail, style=OUTCOME_STYLE.get(r.outcome, "yellow"))
    out.print(table)
