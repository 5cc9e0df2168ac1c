"""A learner's transcript for people and programs: a terminal table, JSON, CSV (one row per requirement) and a
single self-contained HTML page (inline CSS and SVG, no script, no external resource) with a progress bar per
requirement, a timeline of the cycle and a bar chart of the requirements (pipeline/reports/charts.py), that prints on
A4 and Letter. Every value that reaches the HTML is escaped. No identifier but the ledger's learner id and the
employer's employee id is shown (NPI, licence number and e-mail are PII); the learner's name is, as the page is
for the learner and their employer (it never goes to a log)."""

from __future__ import annotations

import csv
import html
import io
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.reports.transcript import LearnerTranscripts, LicenceTranscript
from reconcile.certificate_ids import certificate_file, certificate_id
from reconcile.compliance.evaluate import AT_RISK, MET, OVERDUE, CycleTranscript, RequirementProgress

EXAMPLE_WARNING = "Example profile: verify against the board's current rules before relying on it."
CSV_COLUMNS = (
    "learner_id",
    "employee_id",
    "profile",
    "licence_state",
    "profession",
    "cycle_start",
    "deadline",
    "days_to_deadline",
    "cycle_status",
    "requirement",
    "minimum",
    "counted",
    "missing",
    "met",
)
BAR_WIDTH = 12


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def _requirement_state(progress: RequirementProgress, cycle: CycleTranscript) -> str:
    if not progress.applies:
        return "not applicable"
    if progress.met:
        return MET
    return OVERDUE if cycle.days_to_deadline < 0 else (AT_RISK if cycle.at_risk else "missing")


def _deadline_text(cycle: CycleTranscript) -> str:
    days = cycle.days_to_deadline
    if days < 0:
        return f"{-days} days past the deadline"
    return "deadline today" if days == 0 else f"{days} days to the deadline"


def _certificate_file(learner_id: str | None, activity_id: str, credit_type: str) -> str | None:
    """The file name `cmesync certificates` gives this credit's certificate (a learner in the ledger only)."""
    return certificate_file(certificate_id(learner_id, activity_id, credit_type)) if learner_id else None


# -- JSON ------------------------------------------------------------------------------------------------------


def _requirement_dict(progress: RequirementProgress, cycle: CycleTranscript) -> dict[str, Any]:
    r = progress.requirement
    return {
        "id": r.id,
        "name": r.name,
        "credit_types": list(r.credit_types),
        "topics": list(r.topics),
        "period": r.period,
        "applies": progress.applies,
        "minimum": _amount(r.minimum),
        "counted": _amount(progress.counted),
        "missing": _amount(progress.missing),
        "met": progress.met,
        "state": _requirement_state(progress, cycle),
        "capped": {k: _amount(v) for k, v in progress.capped.items()},
        "counted_records": [c.record_id for c in progress.counted_credits],
    }


def _cycle_dict(licence: LicenceTranscript, learner_id: str | None) -> dict[str, Any]:
    cycle, entry, profile = licence.transcript, licence.entry, licence.transcript.profile
    return {
        "profile": {
            "id": profile.id,
            "name": profile.name,
            "board": profile.board,
            "source": profile.source,
            "example": profile.example,
        },
        "licence": {
            "state": entry.licence_state if entry else None,
            "profession": entry.profession if entry else None,
            "expires": (entry.licence_expires if entry else cycle.cycle.end).isoformat(),
            "employer": entry.employer if entry else None,
            "employee_id": entry.employee_id if entry else None,
        },
        "cycle": {"start": cycle.cycle.start.isoformat(), "deadline": cycle.cycle.end.isoformat()},
        "days_to_deadline": cycle.days_to_deadline,
        "status": cycle.status,
        "met": cycle.met,
        "at_risk": cycle.at_risk,
        "at_risk_days": cycle.at_risk_days,
        "requirements": [_requirement_dict(r, cycle) for r in cycle.requirements],
        "by_credit_type": {k: _amount(v) for k, v in cycle.by_credit_type.items()},
        "by_topic": {k: _amount(v) for k, v in cycle.by_topic.items()},
        "credits": [
            {
                "record_id": c.record_id,
                "activity_id": c.activity_id,
                "activity_title": c.activity_title,
                "credit_type": c.credit_type,
                "amount": _amount(c.amount),
                "completed_on": c.completed_on.isoformat(),
                "tags": list(c.tags),
                "certificate_file": _certificate_file(learner_id, c.activity_id, c.credit_type),
            }
            for c in cycle.credits
        ],
    }


def as_dict(learner: LearnerTranscripts) -> dict[str, Any]:
    as_of = learner.cycles[0].transcript.as_of.isoformat() if learner.cycles else None
    return {
        "learner_id": learner.learner_id,
        "name": learner.name,
        "as_of": as_of,
        "at_risk": learner.at_risk,
        "overdue": learner.overdue,
        "cycles": [_cycle_dict(c, learner.learner_id) for c in learner.cycles],
    }


# -- CSV -------------------------------------------------------------------------------------------------------


def as_csv(learner: LearnerTranscripts) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for licence in learner.cycles:
        cycle, entry = licence.transcript, licence.entry
        for progress in cycle.requirements:
            writer.writerow(
                (
                    learner.learner_id or "",
                    entry.employee_id if entry else "",
                    cycle.profile.id,
                    (entry.licence_state or "") if entry else "",
                    entry.profession if entry else "",
                    cycle.cycle.start.isoformat(),
                    cycle.cycle.end.isoformat(),
                    cycle.days_to_deadline,
                    cycle.status,
                    progress.requirement.id,
                    _amount(progress.minimum),
                    _amount(progress.counted),
                    _amount(progress.missing),
                    "yes" if progress.met else "no",
                )
            )
    return buffer.getvalue()


# -- terminal --------------------------------------------------------------------------------------------------

STATUS_STYLE = {MET: "green", AT_RISK: "red", OVERDUE: "bold red", "on track": "yellow"}


def _text_bar(fraction: float) -> str:
    filled = round(fraction * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def print_table(learner: LearnerTranscripts, out: Console) -> None:
    name = f"{escape(learner.name)} — " if learner.name else ""
    out.print(f"[bold]learner[/] {name}{learner.learner_id or '(not in the ledger yet: no credits)'}")
    for licence in learner.cycles:
        cycle, profile = licence.transcript, licence.transcript.profile
        style = STATUS_STYLE.get(cycle.status, "")
        out.print(
            f"\n[bold]{profile.name}[/] ({profile.id}) — cycle {cycle.cycle.start} to {cycle.cycle.end}, "
            f"as of {cycle.as_of}: [{style}]{cycle.status}[/], {_deadline_text(cycle)}"
        )
        if profile.example:
            out.print(f"[yellow]{EXAMPLE_WARNING}[/]")
        table = Table(title="requirements")
        for column in ("requirement", "needed", "counted", "missing"):
            table.add_column(column, justify="left" if column == "requirement" else "right")
        table.add_column("progress", no_wrap=True, min_width=BAR_WIDTH)
        table.add_column("state")
        for progress in cycle.requirements:
            state = _requirement_state(progress, cycle)
            table.add_row(
                progress.requirement.name,
                _amount(progress.minimum),
                _amount(progress.counted),
                _amount(progress.missing),
                _text_bar(progress.fraction),
                state,
                style=STATUS_STYLE.get(state),
            )
        out.print(table)
        totals = Table(title="credits in this cycle")
        for column in ("by", "what", "amount"):
            totals.add_column(column, justify="right" if column == "amount" else "left")
        for credit_type, amount in cycle.by_credit_type.items():
            totals.add_row("credit type", credit_type, _amount(amount))
        for topic, amount in cycle.by_topic.items():
            totals.add_row("topic", topic, _amount(amount))
        if not cycle.credits:
            out.print("no credits in this cycle yet")
            continue
        out.print(totals)
        credits = Table(title="credit records in this cycle")
        for column in ("completed", "activity", "credit type", "amount"):
            credits.add_column(column, justify="right" if column == "amount" else "left")
        for c in cycle.credits:
            credits.add_row(
                c.completed_on.isoformat(), f"{c.activity_title} ({c.activity_id})", c.credit_type, _amount(c.amount)
            )
        out.print(credits)


# -- HTML ------------------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d2433; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-top: 1px solid #d8dde6; padding-top: 1rem; }
.meta { color: #475467; }
.warning { background: #fff6e0; border-left: 4px solid #dc6803; padding: 0.5rem 0.8rem; }
.status { font-weight: 600; padding: 0.1rem 0.5rem; border-radius: 0.3rem; }
.status-met { background: #dcfae6; color: #067647; } .status-on-track { background: #fef7c3; color: #854a0e; }
.status-at-risk, .status-overdue { background: #fee4e2; color: #b42318; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; width: 100%; }
th, td { border-bottom: 1px solid #d8dde6; padding: 0.35rem 0.6rem; text-align: left; vertical-align: middle; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.progress { display: flex; align-items: center; gap: 0.5rem; }
.bar { background: #eaecf0; border-radius: 0.3rem; height: 0.9rem; min-width: 10rem; flex: 1; overflow: hidden; }
.fill { height: 100%; background: #dc6803; } .fill.met { background: #17b26a; } .fill.late { background: #d92d20; }
.empty { color: #667085; font-style: italic; }
.charts svg.chart { display: block; max-width: 100%; height: auto; margin: 0.5rem 0 1rem; }
@page { margin: 14mm 12mm; }
a.certificate { word-break: break-all; } /* a file name is one long word: it must not widen the table */
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 10pt; color: #000; }
  h2, h3 { break-after: avoid; } h2 { border-top: none; margin-top: 1rem; }
  table, tr, svg.chart, .warning { break-inside: avoid; }
  .charts svg.chart { width: 100%; }
  .status, .bar, .fill, .warning { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
"""


def _status_class(status: str) -> str:
    return "status status-" + status.replace(" ", "-")


def _bar(progress: RequirementProgress, cycle: CycleTranscript) -> str:
    percent = round(progress.fraction * 100)
    tone = "met" if progress.met else ("late" if cycle.at_risk else "")
    label = f"{html.escape(progress.requirement.name)}: {percent}%"
    bar = (
        f'<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{percent}" '
        f'aria-label="{label}"><div class="fill {tone}" style="width: {percent}%"></div></div>'
    )
    return f'<div class="progress">{bar}<span>{percent}%</span></div>'


def _certificate_link(learner_id: str | None, activity_id: str, credit_type: str) -> str:
    """The file `cmesync certificates` writes for this credit, linked relative to the page (put them together)."""
    name = html.escape(_certificate_file(learner_id, activity_id, credit_type) or "")
    return f'<a class="certificate" href="{name}">{name}</a>' if name else ""


def _html_charts(cycle: CycleTranscript, chart_id: str) -> list[str]:
    """The cycle's timeline — the running total of its main requirement (the largest minimum) against what is
    needed, deadline marked — and a bar per requirement; matplotlib is loaded only here."""
    applying = [p for p in cycle.requirements if p.applies]
    if not applying:
        return []
    from pipeline.reports import charts
    main = max(applying, key=lambda p: p.minimum)
    start = cycle.cycle.start
    points = [(max(day, start), float(total)) for day, total in cycle.running_counted(main)]
    timeline = charts.cycle_timeline(
        f"{chart_id}-timeline",
        f"{main.requirement.name}: credits counted over the cycle",
        start,
        cycle.cycle.end,
        cycle.as_of,
        points,
        float(main.minimum),
    )
    rows = [(p.requirement.id, p.requirement.name, float(p.counted), float(p.minimum)) for p in applying]
    bars = charts.requirement_bars(f"{chart_id}-requirements", "Per requirement: counted and needed", rows)
    return ['<div class="charts">', timeline, bars, "</div>"]


def _html_cycle(licence: LicenceTranscript, learner_id: str | None, chart_id: str) -> list[str]:
    e = html.escape
    cycle, entry, profile = licence.transcript, licence.entry, licence.transcript.profile
    who = f"{entry.licence_state or ''} {entry.profession}".strip() if entry else "given on the command line"
    parts = [
        f"<h2>{e(profile.name)}</h2>",
        f'<p class="meta">{e(profile.board)} · profile <code>{e(profile.id)}</code> · licence {e(who)}'
        + (f" · employee {e(entry.employee_id)}" if entry and entry.employee_id else "")
        + "</p>",
        f"<p>Cycle {cycle.cycle.start:%d %b %Y} to {cycle.cycle.end:%d %b %Y}, as of {cycle.as_of:%d %b %Y}: "
        f'<span class="{_status_class(cycle.status)}">{e(cycle.status)}</span> — {e(_deadline_text(cycle))}.</p>',
    ]
    if profile.example:
        parts.append(f'<p class="warning">{e(EXAMPLE_WARNING)} Source: {e(profile.source)}.</p>')
    parts.append(
        "<table><thead><tr><th>requirement</th><th class='n'>needed</th><th class='n'>counted</th>"
        "<th class='n'>missing</th><th>progress</th>"
        "<th>state</th></tr></thead><tbody>"
    )
    for progress in cycle.requirements:
        capped = "".join(
            f"<br><small>{e(t)} capped: {_amount(a)} not counted</small>" for t, a in progress.capped.items()
        )
        parts.append(
            f"<tr><td>{e(progress.requirement.name)}{capped}</td><td class='n'>{_amount(progress.minimum)}</td>"
            f"<td class='n'>{_amount(progress.counted)}</td><td class='n'>{_amount(progress.missing)}</td>"
            f"<td>{_bar(progress, cycle)}</td><td>{e(_requirement_state(progress, cycle))}</td></tr>"
        )
    parts.append("</tbody></table>")
    parts += _html_charts(cycle, chart_id)
    if not cycle.credits:
        parts.append('<p class="empty">No credits in this cycle yet.</p>')
        return parts
    totals = [("credit type", k, v) for k, v in cycle.by_credit_type.items()]
    totals += [("topic", k, v) for k, v in cycle.by_topic.items()]
    parts.append(
        "<h3>Credits in this cycle</h3><table><thead><tr><th>by</th><th>what</th><th class='n'>amount</th></tr>"
    )
    parts.append("</thead><tbody>")
    parts += [f"<tr><td>{e(by)}</td><td>{e(k)}</td><td class='n'>{_amount(v)}</td></tr>" for by, k, v in totals]
    parts.append("</tbody></table>")
    parts.append(
        "<table><thead><tr><th>completed</th><th>activity</th><th>credit type</th><th class='n'>amount</th>"
        "<th>topics</th><th>certificate</th></tr></thead><tbody>"
    )
    for c in cycle.credits:
        parts.append(
            f"<tr><td>{c.completed_on.isoformat()}</td>"
            f"<td>{e(c.activity_title)} <small>({e(c.activity_id)})</small></td><td>{e(c.credit_type)}</td>"
            f"<td class='n'>{_amount(c.amount)}</td><td>{e(', '.join(c.tags))}</td>"
            f"<td>{_certificate_link(learner_id, c.activity_id, c.credit_type)}</td></tr>"
        )
    parts.append("</tbody></table>")
    return parts


def as_html(learner: LearnerTranscripts) -> str:
    e = html.escape
    learner_id = learner.learner_id or "learner not in the ledger yet"
    heading = f"CME transcript — {learner.name}" if learner.name else "CME transcript"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(heading)} — {e(learner_id)}</title><style>{_STYLE}</style></head><body>",
        f'<h1 class="learner-name">{e(heading)}</h1>',
        f'<p class="meta">Learner <code>{e(learner_id)}</code></p>',
    ]
    for n, licence in enumerate(learner.cycles, 1):
        parts += _html_cycle(licence, learner.learner_id, f"cycle{n}")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
