"""`cmesync report`: the report of any past run, rendered again from the ledger — the same HTML file the run
wrote under `reports_dir` (same name, rewritten), its charts and trend as of that run, and the licence-cycle
compliance section evaluated as of the day the run ended."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.queries import RunRow, recent_runs, runs_by_prefix
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.outcome import RUNNING, SUCCEEDED
from pipeline.reports.run_report import build_run_report, compliance_section, headline, write_html

TITLES = {"nightly": "Nightly reconciliation", "stream": "Stream reconciliation"}


class RunNotFound(LookupError):
    """No run, or more than one, matches the id or prefix given; exit code 2."""


@dataclass(frozen=True)
class RenderedReport:
    run_id: str
    flow: str
    status: str
    headline: str
    path: Path

    @property
    def ok(self) -> bool:
        """False for a run that was partial or failed: the command's exit code is 1 then."""
        return self.status in (SUCCEEDED, RUNNING)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "status": self.status,
            "headline": self.headline,
            "report_path": str(self.path),
        }


def chosen_runs(ledger: Ledger, run_id: str | None, last: int) -> list[RunRow]:
    """The run named by id or unique prefix; else the `last` most recent runs, newest first."""
    if run_id is None:
        runs = recent_runs(ledger, last)
        if not runs:
            raise RunNotFound("the ledger holds no run yet")
        return runs
    found = runs_by_prefix(ledger, run_id)
    if not found:
        raise RunNotFound(f"no run with id {run_id!r} (cmesync status lists the last runs)")
    if len(found) > 1:
        raise RunNotFound(f"run id prefix {run_id!r} matches more than one run: give more of it")
    return found


def rerender(settings: Settings, runs: list[RunRow]) -> list[RenderedReport]:
    rendered = []
    for run in runs:
        as_of = (run.finished_at or run.started_at).date()
        compliance = compliance_section(settings, as_of)
        title = TITLES.get(run.flow, run.flow.capitalize())
        with Ledger(settings.ledger_url) as ledger:
            report = build_run_report(ledger, run.run_id, title, compliance)
        path = write_html(report, settings.reports_dir)
        status = RUNNING if run.status == RUNNING else report.outcome.status
        rendered.append(RenderedReport(run.run_id, run.flow, status, headline(report), path))
    return rendered
