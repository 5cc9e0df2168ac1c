"""The run report at a glance as the Prefect artifact carries it (Markdown: the headline first, then the figures
of the charts as tables) and the trend it reads from the `runs` table, on SQLite and PostgreSQL; and matplotlib
stays out of the CLI's start-up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from ledger import tables as t
from ledger.queries import recent_runs
from ledger.runs import finish_run, start_run
from ledger.store import Ledger, utcnow
from pipeline.reports.run_glance import TREND_RUNS
from pipeline.reports.run_report import build_run_report, render_markdown
from tests.ops.conftest import REPO
from tests.ops.test_report import a_night

pytestmark = [pytest.mark.integration, pytest.mark.dialect]


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


def back_date(ledger: Ledger, run_id: str, days: float) -> None:
    with ledger.transaction() as conn:
        moment = utcnow() - timedelta(days=days)
        conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(started_at=moment, finished_at=moment))


def test_given_a_partial_night_when_the_artifact_is_rendered_then_headline_first_and_the_chart_figures_follow(
    ledger: Ledger,
) -> None:
    a_night(ledger)

    markdown = render_markdown(build_run_report(ledger, "run-1", "Nightly"))

    assert markdown.splitlines()[0] == "🟠 **PARTIAL: ancc: 1 deliveries failed**"
    glance = markdown[markdown.index("## At a glance") : markdown.index("## Totals")]
    assert (
        "| registry | sent | failed | pending |\n|---|---:|---:|---:|\n| ama-pra | 1 | 0 | 1 |\n| ancc | 0 | 1 | 0 |"
        in (glance)
    )
    assert "| REGISTRY_UNAVAILABLE | 1 |" in glance and "| SCHEMA_INVALID | 1 |" in glance
    # The duration is the ledger's own (how long the fixture took on this machine), shown to 0.1 s.
    [run] = recent_runs(ledger, limit=1)
    assert run.duration_s is not None
    assert "| `run-1` |" in glance and f"| succeeded | 6 | 0 | 1 | {round(run.duration_s, 1)} |" in glance


def test_given_a_run_that_stopped_when_the_artifact_is_rendered_then_its_headline_is_the_red_mark(
    ledger: Ledger,
) -> None:
    start_run(ledger, "run-2", "nightly")
    finish_run(ledger, "run-2", "failed", {"records_read": 0})

    first = render_markdown(build_run_report(ledger, "run-2", "Nightly")).splitlines()[0]

    assert first.startswith("🔴 **FAILED: run stopped:")


def test_given_more_runs_than_the_trend_holds_when_reported_then_the_last_ones_of_the_same_flow_up_to_the_run(
    ledger: Ledger,
) -> None:
    for n in range(TREND_RUNS + 3):
        start_run(ledger, f"night-{n:02d}", "nightly")
        finish_run(ledger, f"night-{n:02d}", "succeeded", {"records_read": n})
        back_date(ledger, f"night-{n:02d}", TREND_RUNS + 10 - n)
    start_run(ledger, "stream-1", "stream")
    back_date(ledger, "stream-1", 5)

    trend = build_run_report(ledger, "night-31", "Nightly").glance.trend

    assert [p.run_id for p in trend] == [f"night-{n:02d}" for n in range(2, 32)]
    assert [p.records_read for p in trend] == list(range(2, 32))


def test_given_a_stream_run_when_reported_then_its_consumed_messages_are_the_records_read(ledger: Ledger) -> None:
    start_run(ledger, "stream-1", "stream")
    finish_run(ledger, "stream-1", "stopped", {"consumed": 7, "rejected": 2, "credit_versions": 4, "delivered": 4})

    report = build_run_report(ledger, "stream-1", "Stream")

    [point] = report.glance.trend
    assert (point.records_read, point.credits, point.dead_letters) == (7, 4, 2)
    assert render_markdown(report).splitlines()[0] == (
        "🟢 **SUCCEEDED: 7 records read, 4 credit versions written, 4 delivered, no delivery failed**"
    )


def test_given_the_cli_when_it_starts_then_matplotlib_is_not_imported() -> None:
    probe = (
        "import sys, typer, flows.cli, pipeline.reports.run_report; typer.main.get_command(flows.cli.app); "
        "print('matplotlib' in sys.modules)"
    )

    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "False"
