"""The run report a person reads the morning after: the outcome in one coloured line (`headline`), the figures at
a glance (pipeline/reports/run_glance.py: charts in the HTML, tables in the Markdown), then totals, per source, per
registry and dead letters by reason, as Markdown (the Prefect artifact) and as a standalone HTML file under
`reports_dir`.

Everything comes from the ledger, for the run's time window, so the report is built the same way whether the
run succeeded or not and can be rebuilt later for any run id. Only ids, names and counts appear: no PII.

The "Registry diff" section shows the counts the nightly diff stored for the run (`registry_diffs`), one row per
registry; a run that never reached the diff says so.

The headline says how the run ended (pipeline/outcome.py): green when it succeeded; amber (partial) or red
(failed) with the failing registries and the exact `cmesync replay …` commands that re-deliver what failed.

Licence-cycle compliance: `compliance_section` evaluates the compliance roster (pipeline/reports/transcript.py) and
lists the learners at risk per employer, soonest deadline first, by employee id and ledger learner id (no PII); the
nightly flow passes it as `compliance`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from connectors.http import APIError
from ledger.queries import (
    RunRow,
    Window,
    dead_letters_seen,
    deliveries_touched,
    delivery_backlog,
    events_by_source,
    recent_runs,
    registry_diffs_of,
    run_by_id,
)
from ledger.store import Ledger, utcnow
from pipeline.config import Settings
from pipeline.outcome import FAILED, PARTIAL, RUNNING, SUCCEEDED, RunOutcome, outcome_of
from pipeline.reports.run_glance import Glance, glance_html, glance_markdown, glance_of, records_read
from pipeline.reports.summary import LABELS
from pipeline.reports.transcript import ComplianceSummary, compliance_summary, load_inputs
from reconcile.catalog import CatalogError
from reconcile.compliance.evaluate import OVERDUE, CycleTranscript
from reconcile.compliance.profiles import ProfileError
from reconcile.compliance.roster import RosterError
from reconcile.vocabulary import DeliveryState

REGISTRY_DIFF_TITLE = "Registry diff"
COMPLIANCE_TITLE = "Licence-cycle compliance: learners at risk or overdue"


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    empty_note: str = "nothing to show"


@dataclass
class RunReport:
    title: str
    run: RunRow
    totals: Table
    sources: Table
    registries: Table
    dead_letters: Table
    registry_diff: Table
    outcome: RunOutcome
    glance: Glance
    compliance: Table | None = None  # the at-risk list of `compliance_section`

    @property
    def tables(self) -> list[Table]:
        diff = self.registry_diff
        compliance = self.compliance or Table(
            COMPLIANCE_TITLE, (), empty_note="licence-cycle compliance was not evaluated for this report"
        )
        return [self.totals, self.sources, self.registries, self.dead_letters, diff, compliance]


def build_run_report(
    ledger: Ledger, run_id: str, title: str, compliance: Table | None = None, outcome: RunOutcome | None = None
) -> RunReport:
    """`outcome`: how the run ended, as the flow decided it; rebuilt from the ledger when not given."""
    run = run_by_id(ledger, run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in the ledger")
    window = Window(run.started_at, run.finished_at or utcnow())
    if outcome is None:
        failed = {
            registry: states.get(DeliveryState.FAILED, 0)
            for registry, states in deliveries_touched(ledger, window).items()
        }
        error = "the run stopped part-way (see its Prefect logs)" if run.status == FAILED else None
        outcome = outcome_of(failed, registry_diffs_of(ledger, run_id), error)
    return RunReport(
        title,
        run,
        _totals(run),
        _sources(ledger, window),
        _registries(ledger, window),
        _dead_letters(ledger, window),
        _registry_diff(ledger, run_id),
        outcome,
        glance_of(ledger, run, window),
        compliance,
    )


def _headline_status(report: RunReport) -> str:
    return RUNNING if report.run.status == RUNNING else report.outcome.status


# The headline's colour in Markdown, where the Prefect UI shows no styling of ours.
STATUS_MARK = {SUCCEEDED: "🟢", PARTIAL: "🟠", FAILED: "🔴", RUNNING: "🔵"}


def headline(report: RunReport) -> str:
    """The outcome in one line, first on the page: how the run ended and, unless it succeeded, what went wrong."""
    status = _headline_status(report)
    if status == RUNNING:
        return "RUNNING: the run has not finished yet"
    if report.outcome.ok:
        counts = report.run.counts
        return (
            f"SUCCEEDED: {records_read(counts)} records read, {counts.get('credit_versions', 0)} credit versions "
            f"written, {counts.get('delivered', 0)} delivered, no delivery failed"
        )
    return f"{status.upper()}: " + "; ".join(report.outcome.problems)


def _next_steps(outcome: RunOutcome) -> list[str]:
    """What to do about a run that did not succeed: the replay per registry, else a reachability check."""
    steps = [f"re-deliver: `{command}`" for command in outcome.replay_commands]
    if outcome.diff_unavailable or outcome.error is not None:
        config = f" --config {outcome.config_path}" if outcome.config_path else ""
        steps.append(f"check what is reachable: `cmesync config check{config}`")
    return steps


DIFF_HEADERS = (
    "registry",
    "records in step",
    "missing there",
    "older version or other amount",
    "extra there",
    "repaired tonight",
    "outcome",
)


def _registry_diff(ledger: Ledger, run_id: str) -> Table:
    """Per registry, in words: how many records the registry holds as the ledger has them, how many it lacks,
    holds in another version (stale) or with another amount or date (altered), holds beyond the ledger
    (duplicates, revoked in the ledger, unknown), what was repaired, and whether the registry could be compared
    at all. An unavailable registry shows no counts, so it never reads as "in step"."""
    rows = [_diff_row(registry, counts) for registry, counts in registry_diffs_of(ledger, run_id).items()]
    return Table(REGISTRY_DIFF_TITLE, DIFF_HEADERS, rows, "this run did not reach the registry diff")


def _diff_row(registry: str, counts: dict[str, int]) -> tuple[str, ...]:
    if counts.get("unavailable"):
        return (registry, "-", "-", "-", "-", "-", "unavailable: its holdings could not be read, not compared")
    n = counts.get
    missing, differing = n("missing", 0), n("stale", 0) + n("altered", 0)
    extra = n("duplicate", 0) + n("revoked_in_ledger", 0) + n("unknown", 0)
    in_step = max(n("expected", 0) - missing - differing, 0)
    outcome = ["in step with the ledger"] if not (missing or differing or extra) else []
    if n("repair_failed", 0):
        outcome.append(f"{n('repair_failed', 0)} repairs failed (see dead letters)")
    if n("reported", 0):
        outcome.append(f"{n('reported', 0)} extra reported only (extra_holdings = report)")
    if n("unsettled", 0):
        outcome.append(f"{n('unsettled', 0)} awaiting delivery, not compared")
    if not outcome:
        outcome.append("repaired")
    return (registry, str(in_step), str(missing), str(differing), str(extra), str(n("repaired", 0)), "; ".join(outcome))


def _totals(run: RunRow) -> Table:
    order = list(LABELS)
    keys = sorted(run.counts, key=lambda k: (order.index(k) if k in order else len(order), k))
    rows = [(LABELS.get(key, key.replace("_", " ")), str(run.counts[key])) for key in keys]
    return Table("Totals", ("what", "count"), rows, "the run recorded no counts")


def _sources(ledger: Ledger, window: Window) -> Table:
    accepted = events_by_source(ledger, window)
    rejected: dict[tuple[str, str], int] = {}
    for stage, source, _, count in dead_letters_seen(ledger, window):
        rejected[(source, stage)] = rejected.get((source, stage), 0) + count
    sources = sorted(set(accepted) | {source for source, stage in rejected if stage != "deliver"})
    rows = [
        (
            source,
            str(accepted.get(source, 0)),
            str(rejected.get((source, "normalise"), 0)),
            str(rejected.get((source, "reconcile"), 0)),
        )
        for source in sources
    ]
    headers = ("source", "events accepted", "rejected at normalise", "rejected at reconcile")
    return Table("Per source", headers, rows, "no source activity in this run")


def _registries(ledger: Ledger, window: Window) -> Table:
    touched = deliveries_touched(ledger, window)
    backlog = delivery_backlog(ledger)
    rows = [
        (
            registry,
            str(touched.get(registry, {}).get(DeliveryState.SENT, 0)),
            str(touched.get(registry, {}).get(DeliveryState.FAILED, 0)),
            str(backlog.get(registry, {}).get(DeliveryState.PENDING, 0)),
            str(backlog.get(registry, {}).get(DeliveryState.FAILED, 0)),
        )
        for registry in sorted(set(touched) | set(backlog))
    ]
    headers = ("registry", "delivered", "failed", "pending now", "failed, awaiting replay")
    return Table("Per registry", headers, rows, "no registry deliveries")


def _dead_letters(ledger: Ledger, window: Window) -> Table:
    counts: dict[tuple[str, str], int] = {}
    for stage, _, reason_code, count in dead_letters_seen(ledger, window):
        counts[(stage, reason_code)] = counts.get((stage, reason_code), 0) + count
    rows = [(stage, code, str(n)) for (stage, code), n in sorted(counts.items())]
    return Table("Dead letters by reason", ("stage", "reason code", "count"), rows, "no dead letters in this run")


def _standing(transcript: CycleTranscript) -> str:
    """Overdue (the deadline has passed with a requirement unmet) apart from at risk (it is still ahead)."""
    days = transcript.days_to_deadline
    if transcript.status == OVERDUE:
        return f"OVERDUE, {-days} days past the deadline"
    return f"at risk, {days} days left"


def compliance_table(summary: ComplianceSummary) -> Table:
    """Learners at risk or overdue per employer, soonest deadline first (overdue ones come first in each
    employer, the deadline having passed); roster rows without a profile after them. The learner column is
    an id prefix `cmesync transcript` accepts."""
    rows = [
        (
            a.entry.employer or "(no employer)",
            a.entry.label,
            a.learner_id[:8] if a.learner_id else "not in ledger",
            a.transcript.profile.id,
            a.transcript.cycle.end.isoformat(),
            _standing(a.transcript),
            "; ".join(f"{r.requirement.name}: {r.missing:.2f}" for r in a.transcript.missing),
        )
        for a in summary.at_risk
    ]
    rows += [("(no profile)", "", "", "", "", "", problem) for problem in summary.unassigned]
    headers = ("employer", "employee", "learner", "profile", "deadline", "standing", "missing")
    note = f"no learner at risk: {summary.evaluated} licences evaluated as of {summary.as_of.isoformat()}"
    return Table(COMPLIANCE_TITLE, headers, rows, note)


def compliance_section(settings: Settings, as_of: date) -> Table:
    """The at-risk list of the compliance roster as of `as_of`; a roster or profile that cannot be read is named
    in the section instead, so the report of a run that otherwise went through is still written."""
    try:
        inputs = load_inputs(settings)
    except (ProfileError, RosterError, CatalogError, APIError) as err:
        return Table(COMPLIANCE_TITLE, (), empty_note=f"not evaluated: {err}")
    with Ledger(settings.ledger_url) as ledger:
        return compliance_table(compliance_summary(ledger, inputs, as_of))


def _duration(run: RunRow) -> str:
    return f"{run.duration_s:.1f} s" if run.duration_s is not None else "still running"


def render_markdown(report: RunReport, html_path: Path | None = None) -> str:
    run = report.run
    status = _headline_status(report)
    lines = [
        f"{STATUS_MARK.get(status, '')} **{_md_cell(headline(report))}**",
        "",
        f"# {report.title}",
        "",
        f"Run `{run.run_id}` **{status}**, started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, {_duration(run)}.",
    ]
    if not report.outcome.ok:
        lines += ["", *(f"- **{problem}**" for problem in report.outcome.problems)]
        lines += [f"- {step}" for step in _next_steps(report.outcome)]
    if html_path:
        lines.append(f"HTML copy of this report: `{html_path}`.")
    lines += ["", *glance_markdown(report.glance)]
    for table in report.tables:
        lines += ["", f"## {table.title}", ""]
        if not table.rows:
            lines.append(f"_{table.empty_note}_")
            continue
        lines.append("| " + " | ".join(table.headers) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.headers))) + "|")
        lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d2433; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; min-width: 24rem; }
th, td { border-bottom: 1px solid #d8dde6; padding: 0.35rem 0.8rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.status-succeeded { color: #17803d; } .status-partial { color: #b54708; } .status-failed { color: #b42318; }
.outcome { border-left: 0.3rem solid; padding: 0.4rem 1rem; margin: 1rem 0; }
.outcome.status-partial { background: #fffaeb; } .outcome.status-failed { background: #fef3f2; }
.empty { color: #667085; font-style: italic; }
.headline { font-size: 1.25rem; font-weight: 600; color: #fff; padding: 0.6rem 1rem; border-radius: 0.3rem; }
.headline.status-succeeded { background: #17803d; } .headline.status-partial { background: #b54708; }
.headline.status-failed { background: #b42318; } .headline.status-running { background: #475467; }
.glance svg.chart { display: block; max-width: 100%; height: auto; margin: 0.5rem 0 1rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  .headline, .outcome { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
  svg.chart, table, .outcome { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""


def render_html(report: RunReport) -> str:
    run = report.run
    e = html.escape
    status = _headline_status(report)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(report.title)} — {e(run.run_id)}</title><style>{_STYLE}</style></head><body>",
        f'<p class="headline status-{e(status)}" role="status">{e(headline(report))}</p>',
        f"<h1>{e(report.title)}</h1>",
        f'<p>Run <code>{e(run.run_id)}</code> <strong class="status-{e(status)}">{e(status)}</strong>, '
        f"started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, {e(_duration(run))}.</p>",
    ]
    if not report.outcome.ok:
        items = [f"<li><strong>{e(problem)}</strong></li>" for problem in report.outcome.problems]
        items += [f"<li>{_code_spans(step)}</li>" for step in _next_steps(report.outcome)]
        parts.append(f'<div class="outcome status-{e(status)}"><ul>{"".join(items)}</ul></div>')
    parts += glance_html(report.glance)
    for table in report.tables:
        parts.append(f"<h2>{e(table.title)}</h2>")
        if not table.rows:
            parts.append(f'<p class="empty">{e(table.empty_note)}</p>')
            continue
        parts.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.headers) + "</tr></thead>")
        parts.append("<tbody>")
        for row in table.rows:
            cells = "".join(
                f'<td class="n">{e(cell)}</td>' if i and cell.isdigit() else f"<td>{e(cell)}</td>"
                for i, cell in enumerate(row)
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _code_spans(text: str) -> str:
    """Escape `text`, rendering its `backquoted` parts as <code>."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{piece}</code>" if i % 2 else piece for i, piece in enumerate(pieces))


def html_path(run: RunRow, directory: Path) -> Path:
    """Where the HTML copy of a run's report is written."""
    return directory / f"{run.flow}-{run.started_at:%Y%m%dT%H%M%SZ}-{run.run_id[:8]}.html"


def write_html(report: RunReport, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = html_path(report.run, directory)
    path.write_text(render_html(report), encoding="utf-8")
    return path


def latest_run_summary(ledger: Ledger, flow: str, reports_dir: Path) -> dict[str, Any] | None:
    """The latest run of `flow` for `run --json`: its id, status, report path and, per registry, what was
    delivered and failed in the run, what is still pending or failed, and the registry diff's counts."""
    run = next((r for r in recent_runs(ledger, 20) if r.flow == flow), None)
    if run is None:
        return None
    window = Window(run.started_at, run.finished_at or utcnow())
    touched, backlog, diffs = (
        deliveries_touched(ledger, window),
        delivery_backlog(ledger),
        registry_diffs_of(ledger, run.run_id),
    )
    path = html_path(run, reports_dir)
    registries = {
        registry: {
            "delivered": touched.get(registry, {}).get(DeliveryState.SENT, 0),
            "failed": touched.get(registry, {}).get(DeliveryState.FAILED, 0),
            "pending_now": backlog.get(registry, {}).get(DeliveryState.PENDING, 0),
            "failed_awaiting_replay": backlog.get(registry, {}).get(DeliveryState.FAILED, 0),
            "registry_diff": diffs.get(registry),
        }
        for registry in sorted(set(touched) | set(backlog) | set(diffs))
    }
    return {
        "run_id": run.run_id,
        "status": run.status,
        "report_path": str(path) if path.exists() else None,
        "registries": registries,
    }


def publish_run_report(
    ledger_url: str,
    run_id: str,
    title: str,
    reports_dir: Path,
    compliance: Table | None = None,
    outcome: RunOutcome | None = None,
) -> tuple[str, Path]:
    """Build the report of one run, write its HTML copy and return (markdown, html path)."""
    with Ledger(ledger_url) as ledger:
        report = build_run_report(ledger, run_id, title, compliance, outcome)
    path = write_html(report, reports_dir)
    return render_markdown(report, path), path
