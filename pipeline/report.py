"""The run report a person reads the morning after: totals, then per source, per registry and dead letters by
reason, as Markdown (the Prefect artifact) and as a standalone HTML file under `reports_dir`.

Everything comes from the ledger, for the run's time window, so the report is built the same way whether the
run succeeded or not and can be rebuilt later for any run id. Only ids, names and counts appear: no PII.

The "Registry diff" section shows the counts the nightly diff stored for the run (`registry_diffs`), one row per
registry; a run that never reached the diff says so.

Licence-cycle compliance: `compliance_section` evaluates the compliance roster (pipeline/transcript.py) and lists
the learners at risk per employer, soonest deadline first, by employee id and ledger learner id (no PII); the
nightly flow passes it as `compliance`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from connectors.http import APIError
from ledger.queries import (
    RunRow,
    Window,
    dead_letters_seen,
    deliveries_touched,
    delivery_backlog,
    events_by_source,
    registry_diffs_of,
    run_by_id,
)
from ledger.store import Ledger, utcnow
from pipeline.config import Settings
from pipeline.summary import LABELS
from pipeline.transcript import ComplianceSummary, compliance_summary, load_inputs
from reconcile.catalog import CatalogError
from reconcile.compliance.profiles import ProfileError
from reconcile.compliance.roster import RosterError

REGISTRY_DIFF_TITLE = "Registry diff"
COMPLIANCE_TITLE = "Licence-cycle compliance: learners at risk"


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
    compliance: Table | None = None  # the at-risk list of `compliance_section`

    @property
    def tables(self) -> list[Table]:
        diff = self.registry_diff
        compliance = self.compliance or Table(
            COMPLIANCE_TITLE, (), empty_note="licence-cycle compliance was not evaluated for this report"
        )
        return [self.totals, self.sources, self.registries, self.dead_letters, diff, compliance]


def build_run_report(ledger: Ledger, run_id: str, title: str, compliance: Table | None = None) -> RunReport:
    run = run_by_id(ledger, run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in the ledger")
    window = Window(run.started_at, run.finished_at or utcnow())
    return RunReport(
        title,
        run,
        _totals(run),
        _sources(ledger, window),
        _registries(ledger, window),
        _dead_letters(ledger, window),
        _registry_diff(ledger, run_id),
        compliance,
    )


DIFF_COLUMNS = ("expected", "drift", "repaired", "repair_failed", "reported", "held", "unavailable")


def _registry_diff(ledger: Ledger, run_id: str) -> Table:
    """Per registry: what the ledger expected it to hold, how many records differed, and what became of them;
    the findings behind `drift` (missing, stale, altered, extra) follow as further columns."""
    diffs = registry_diffs_of(ledger, run_id)
    findings = sorted({key for counts in diffs.values() for key in counts} - set(DIFF_COLUMNS))
    columns = (*DIFF_COLUMNS[:2], *findings, *DIFF_COLUMNS[2:])
    rows = [(registry, *(str(counts.get(c, 0)) for c in columns)) for registry, counts in diffs.items()]
    return Table(REGISTRY_DIFF_TITLE, ("registry", *columns), rows, "this run did not reach the registry diff")


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
            str(touched.get(registry, {}).get("sent", 0)),
            str(touched.get(registry, {}).get("failed", 0)),
            str(backlog.get(registry, {}).get("pending", 0)),
            str(backlog.get(registry, {}).get("failed", 0)),
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


def compliance_table(summary: ComplianceSummary) -> Table:
    """Learners at risk per employer, soonest deadline first; roster rows without a profile after them."""
    rows = [
        (
            a.entry.employer or "(no employer)",
            a.entry.label,
            a.learner_id[:8] if a.learner_id else "not in ledger",
            a.transcript.profile.id,
            a.transcript.cycle.end.isoformat(),
            str(a.transcript.days_to_deadline),
            "; ".join(f"{r.requirement.name}: {r.missing:.2f}" for r in a.transcript.missing),
        )
        for a in summary.at_risk
    ]
    rows += [("(no profile)", "", "", "", "", "", problem) for problem in summary.unassigned]
    headers = ("employer", "employee", "learner", "profile", "deadline", "days left", "missing")
    note = f"no learner at risk: {summary.evaluated} licences evaluated as of {summary.as_of.isoformat()}"
    return Table(COMPLIANCE_TITLE, headers, rows, note)


def compliance_section(settings: Settings, as_of: date) -> Table:
    """The at-risk list of the compliance roster as of `as_of`; a roster or profile that cannot be read is named
    in the section instead, so the report of a run that otherwise went through is still written."""
    try:
        inputs = load_inputs(settings)
    except (ProfileError, RosterError, CatalogError, APIError) as err:
        return Table(COMPLIANCE_TITLE, (), empty_note=f"not evaluated: {err}")
    ledger = Ledger(settings.ledger_url)
    try:
        return compliance_table(compliance_summary(ledger, inputs, as_of))
    finally:
        ledger.close()


def _duration(run: RunRow) -> str:
    return f"{run.duration_s:.1f} s" if run.duration_s is not None else "still running"


def render_markdown(report: RunReport, html_path: Path | None = None) -> str:
    run = report.run
    lines = [
        f"# {report.title}",
        "",
        f"Run `{run.run_id}` **{run.status}**, started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, {_duration(run)}.",
    ]
    if html_path:
        lines.append(f"HTML copy of this report: `{html_path}`.")
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
.status-succeeded { color: #17803d; } .status-failed { color: #b42318; }
.empty { color: #667085; font-style: italic; }
"""


def render_html(report: RunReport) -> str:
    run = report.run
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(report.title)} — {e(run.run_id)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
        f'<p>Run <code>{e(run.run_id)}</code> <strong class="status-{e(run.status)}">{e(run.status)}</strong>, '
        f"started {run.started_at:%Y-%m-%d %H:%M:%S} UTC, {e(_duration(run))}.</p>",
    ]
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


def write_html(report: RunReport, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = f"{report.run.started_at:%Y%m%dT%H%M%SZ}"
    path = directory / f"{report.run.flow}-{stamp}-{report.run.run_id[:8]}.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path


def publish_run_report(
    ledger_url: str,
    run_id: str,
    title: str,
    reports_dir: Path,
    compliance: Table | None = None,
) -> tuple[str, Path]:
    """Build the report of one run, write its HTML copy and return (markdown, html path)."""
    ledger = Ledger(ledger_url)
    try:
        report = build_run_report(ledger, run_id, title, compliance)
    finally:
        ledger.close()
    path = write_html(report, reports_dir)
    return render_markdown(report, path), path
