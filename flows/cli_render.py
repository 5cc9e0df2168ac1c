"""How the `cmesync` commands print for a person: rich tables on stdout. (`--json` bypasses all of this.)
Only ids, names, codes and counts are printed — a dead letter's payload only through `payload_text`, which
`deadletters show --reveal` alone calls."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.queries import DeadLetterRow, RunRow, SelectedDelivery
from pipeline.ops.check import FAILED, OK, CheckResult
from pipeline.ops.replay import RegistryOutcome, ReplayResult
from pipeline.ops.retry import RESOLVED, RetryResult
from pipeline.ops.status import Status
from pipeline.outcome import FAILED as RUN_FAILED
from pipeline.outcome import PARTIAL, SUCCEEDED
from pipeline.reports.summary import LABELS

if TYPE_CHECKING:
    from pipeline.stages.past_reports import RenderedReport

out = Console()

OUTCOME_STYLE = {OK: "green", RESOLVED: "green", FAILED: "red"}

PLAIN, TSV, JSON = "plain", "tsv", "json"
FORMATS = (PLAIN, TSV, JSON)
# Ids are printed as this many leading characters: unique in practice, and every command that takes an id
# (deadletters show/retry/resolve, replay --record-id/--learner, transcript) accepts such a prefix.
ID_PREFIX = 8


def short_id(identifier: str) -> str:
    return identifier[:ID_PREFIX]


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def _short_when(moment: datetime | None) -> str:
    """Minutes are enough in a table meant for 80 columns; --format tsv/json carry the full instant."""
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _grid(title: str | None = None) -> Table:
    """A table that fits 80 columns: no outer box, one space of padding, headers underlined; cells fold (never an
    ellipsis, which would cut an id or a status in half)."""
    return Table(
        title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True, title_justify="left"
    )


def _column(
    table: Table,
    header: str,
    *,
    numeric: bool = False,
    identifier: bool = False,
    flexible: bool = False,
    whole: bool = False,
) -> None:
    """`flexible`: this column takes the width the others leave (the long one: a position, a reason); `whole`:
    never folded (reason codes, which are looked up and pasted as they are)."""
    if identifier:
        table.add_column(header, no_wrap=True, min_width=ID_PREFIX)
    elif whole:
        table.add_column(header, no_wrap=True)
    elif flexible:
        table.add_column(header, overflow="fold", ratio=1)
    else:
        table.add_column(header, justify="right" if numeric else "left", overflow="fold")


def tsv(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    """Tab-separated values for scripts: a header line, then full (unshortened) values, one row per line."""

    def cell(value: object) -> str:
        return " ".join(str("" if value is None else value).split())

    if title:
        print(f"# {title}")
    print("\t".join(headers))
    for row in rows:
        print("\t".join(cell(v) for v in row))


def counts_table(title: str, counts: dict[str, int]) -> None:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(LABELS.get(key, key.replace("_", " ")), str(value))
    out.print(table)


DELIVERY_TSV = (
    "registry",
    "record_id",
    "version",
    "state",
    "attempts",
    "credit_type",
    "activity_id",
    "reasons",
    "updated_at",
)


def deliveries_table(title: str, deliveries: Sequence[SelectedDelivery], fmt: str = PLAIN) -> None:
    if fmt == TSV:
        rows = [
            (
                d.registry,
                d.record_id,
                d.version,
                d.state,
                d.attempts,
                d.credit_type,
                d.activity_id,
                ",".join(d.reason_codes),
                _iso(d.updated_at),
            )
            for d in deliveries
        ]
        tsv(DELIVERY_TSV, rows)
        return
    table = _grid(title)
    _column(table, "record", identifier=True)
    _column(table, "v", numeric=True)
    for header in ("registry", "state", "credit type", "activity", "reasons"):
        _column(table, header)
    _column(table, "tries", numeric=True)
    for d in deliveries:
        table.add_row(
            short_id(d.record_id),
            str(d.version),
            d.registry,
            d.state,
            d.credit_type,
            d.activity_id,
            ", ".join(d.reason_codes) or "-",
            str(d.attempts),
        )
    out.print(table)


def _failure_note(o: RegistryOutcome) -> str:
    """Why deliveries failed: the stage's own error, else each reason the registry gave, with how many."""
    notes = [o.error] if o.error else []
    notes += [f"{reason} ({n} deliveries)" if n > 1 else reason for reason, n in sorted(o.reasons.items())]
    return "; ".join(notes)


def replay_result(result: ReplayResult, fmt: str = PLAIN) -> None:
    if result.dry_run:
        title = f"replay --dry-run: {len(result.selected)} deliveries would be sent"
        deliveries_table(title, result.selected, fmt)
        return
    if not result.selected:
        if fmt == TSV:
            tsv(("registry", "selected", "delivered", "failed", "note"), [])
        else:
            out.print("nothing to replay: no delivery matches")
        return
    rows = [(o.registry, o.selected, o.delivered, o.failed, _failure_note(o)) for o in result.outcomes]
    if fmt == TSV:
        tsv(("registry", "selected", "delivered", "failed", "note"), rows)
        return
    table = _grid("replay")
    _column(table, "registry")
    for header in ("selected", "delivered", "failed"):
        _column(table, header, numeric=True)
    _column(table, "why it failed", flexible=True)
    for o, row in zip(result.outcomes, rows, strict=True):
        style = "green" if not o.failed and not o.error else "red"
        table.add_row(*(str(v) for v in row), style=style)
    out.print(table)


DEAD_LETTER_TSV = (
    "dead_letter_id",
    "stage",
    "reason_code",
    "source",
    "source_ref",
    "registry",
    "attempts",
    "last_seen",
    "resolved_at",
)


def dead_letters_table(rows: Sequence[DeadLetterRow], total: int | None = None, fmt: str = PLAIN) -> None:
    """The dead letters, newest first; `total` is how many match the filters (more than shown past --limit)."""
    if fmt == TSV:
        tsv(
            DEAD_LETTER_TSV,
            [
                (
                    r.dead_letter_id,
                    r.stage,
                    r.reason_code,
                    r.source,
                    r.source_ref,
                    r.registry or "",
                    r.attempts,
                    _iso(r.last_seen),
                    _iso(r.resolved_at),
                )
                for r in rows
            ],
        )
        return
    total = len(rows) if total is None else total
    title = f"{len(rows)} dead letters" if total == len(rows) else f"{len(rows)} of {total} dead letters (--limit)"
    table = _grid(title)
    _column(table, "id", identifier=True)
    _column(table, "stage / reason", whole=True)
    _column(table, "source / position", flexible=True)
    _column(table, "tries", numeric=True)
    _column(table, "last seen")
    for r in rows:
        where = f"{r.source} {r.source_ref}" + (f" → {r.registry}" if r.registry else "")
        table.add_row(
            short_id(r.dead_letter_id),
            f"{r.stage}\n{r.reason_code}",
            where,
            str(r.attempts),
            f"{_short_when(r.last_seen)}\n{'resolved ' + _short_when(r.resolved_at) if r.resolved else 'open'}",
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


RUN_TSV = ("run_id", "flow", "status", "started_at", "duration_s", "read", "credits", "delivered", "failed")


def _run_cells(run: RunRow) -> tuple[str, ...]:
    return (
        str(run.counts.get("records_read", run.counts.get("consumed", "-"))),
        str(run.counts.get("credit_versions", "-")),
        str(run.counts.get("delivered", "-")),
        str(run.counts.get("delivery_failed", "-")),
    )


def status(report: Status, fmt: str = PLAIN) -> None:
    if fmt == TSV:
        _status_tsv(report)
        return
    runs = _grid("last runs")
    _column(runs, "run id", identifier=True)
    for header in ("flow", "status", "started (UTC)", "took"):
        _column(runs, header, whole=True)
    _column(runs, "counts", flexible=True)
    for run in report.runs:
        read, credits, delivered, failed = _run_cells(run)
        runs.add_row(
            short_id(run.run_id),
            run.flow,
            run.status,
            f"{run.started_at:%m-%d %H:%M}",
            f"{run.duration_s:.1f} s" if run.duration_s is not None else "running",
            f"{read} read, {credits} credits, {delivered} delivered, {failed} failed",
            style="red" if run.status == "failed" else None,
        )
    out.print(runs if report.runs else "no runs recorded yet")

    lag = _grid("consumer lag (group committed offset vs end of partition)")
    _column(lag, "topic")
    for header in ("partition", "committed", "end", "lag"):
        _column(lag, header, numeric=True)
    for p in report.lag:
        committed = "-" if p.committed is None else str(p.committed)
        lag.add_row(p.topic, str(p.partition), committed, str(p.end), str(p.lag), style="yellow" if p.lag else None)
    out.print(lag if not report.lag_error else f"consumer lag unknown: {report.lag_error}")

    backlog = _grid("deliveries per registry")
    states = sorted({state for counts in report.backlog.values() for state in counts})
    _column(backlog, "registry")
    for state in states:
        _column(backlog, state, numeric=True)
    for registry, counts in sorted(report.backlog.items()):
        backlog.add_row(registry, *(str(counts.get(state, 0)) for state in states))
    out.print(backlog if report.backlog else "no deliveries recorded yet")

    if not report.oldest_unresolved:
        out.print("[green]no unresolved dead letters[/]")
        return
    unresolved = _grid("unresolved dead letters")
    _column(unresolved, "stage")
    _column(unresolved, "reason code")
    _column(unresolved, "count", numeric=True)
    for stage, code, count in report.unresolved:
        unresolved.add_row(stage, code, str(count))
    out.print(unresolved)
    oldest = report.oldest_unresolved
    out.print(
        f"oldest unresolved dead letter: {short_id(oldest.dead_letter_id)} ({oldest.stage}, {oldest.reason_code}, "
        f"{oldest.source} {oldest.source_ref}), first seen {_when(oldest.first_seen)} UTC",
        markup=False,
    )


def _status_tsv(report: Status) -> None:
    runs = [
        (
            r.run_id,
            r.flow,
            r.status,
            _iso(r.started_at),
            "" if r.duration_s is None else f"{r.duration_s:.1f}",
            *_run_cells(r),
        )
        for r in report.runs
    ]
    tsv(RUN_TSV, runs, "last runs")
    print()
    lag = [(p.topic, p.partition, "" if p.committed is None else p.committed, p.end, p.lag) for p in report.lag]
    tsv(("topic", "partition", "committed", "end", "lag"), lag, "consumer lag")
    print()
    backlog = [
        (registry, state, n)
        for registry, counts in sorted(report.backlog.items())
        for state, n in sorted(counts.items())
    ]
    tsv(("registry", "state", "deliveries"), backlog, "deliveries per registry")
    print()
    tsv(("stage", "reason_code", "count"), report.unresolved, "unresolved dead letters")


def checks(results: Sequence[CheckResult]) -> None:
    table = Table(title="config check")
    for column in ("component", "result", "detail"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(r.component, r.outcome, r.detail, style=OUTCOME_STYLE.get(r.outcome, "yellow"))
    out.print(table)


REPORT_STYLE = {SUCCEEDED: "green", PARTIAL: "dark_orange", RUN_FAILED: "bold red"}


def rendered_reports(reports: Sequence[RenderedReport]) -> None:
    """Per run re-rendered by `cmesync report`: its headline in the outcome's colour, then where the page is."""
    for report in reports:
        style = REPORT_STYLE.get(report.status, "")
        out.print(f"[{style}]{escape(report.headline)}[/]" if style else escape(report.headline), highlight=False)
        out.print(f"  run {report.run_id} ({report.flow}): {report.path}", markup=False, highlight=False)
