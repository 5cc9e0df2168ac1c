"""`cmesync report` through the real command, against a ledger on SQLite and PostgreSQL: it renders a past run's
report again (the file the run wrote, with its charts), picks runs by id prefix or the last N, says what it
cannot find in one line (exit 2) and ends 1 when a run reported was partial or failed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from ledger import tables as t
from ledger.runs import finish_run, start_run
from ledger.store import Ledger, utcnow
from tests.ops.test_operator_trust import cmesync, one_line
from tests.ops.test_report import a_night

pytestmark = pytest.mark.integration

FAILED_RUN = "0f9e8d7c-5b1a-4c62-9a51-2d3e4f5a6b7c"


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


def nights(ledger: Ledger) -> None:
    """Two nights: one that stopped part-way yesterday, then `a_night` (one ancc delivery failed: partial)."""
    start_run(ledger, FAILED_RUN, "nightly")
    finish_run(ledger, FAILED_RUN, "failed", {"records_read": 4, "rejected_at_normalise": 2})
    with ledger.transaction() as conn:
        earlier = utcnow() - timedelta(days=1)
        conn.execute(
            update(t.runs).where(t.runs.c.run_id == FAILED_RUN).values(started_at=earlier, finished_at=earlier)
        )
    a_night(ledger)


def config(tmp_path: Path, ledger_url: str) -> Path:
    path = tmp_path / "cmesync.toml"
    path.write_text(f'ledger_url = "{ledger_url}"\nreports_dir = "{tmp_path / "reports"}"\n', encoding="utf-8")
    return path


def test_given_past_runs_when_cmesync_report_then_the_latest_is_rendered_again_with_its_charts(
    ledger: Ledger, tmp_path: Path
) -> None:
    nights(ledger)
    cfg = str(config(tmp_path, ledger.url))

    latest = cmesync(tmp_path, "report", "--config", cfg, "--json")

    assert latest.returncode == 1, latest.stderr  # run-1 was partial
    [report] = latest.json()
    assert report["run_id"] == "run-1" and report["status"] == "partial"
    assert report["headline"] == "PARTIAL: ancc: 1 deliveries failed"
    page = Path(report["report_path"]).read_text(encoding="utf-8")
    assert Path(report["report_path"]).parent == tmp_path / "reports"
    for chart in ("deliveries", "dead-letters", "trend"):
        assert f'data-chart="{chart}"' in page
    assert 'id="deliveries-failed-ancc"' in page and 'id="trend-records_read"' in page
    assert '<p class="headline status-partial"' in page


def test_given_a_run_id_prefix_when_cmesync_report_then_that_run_is_rendered_with_a_red_headline(
    ledger: Ledger, tmp_path: Path
) -> None:
    nights(ledger)
    cfg = str(config(tmp_path, ledger.url))

    failed = cmesync(tmp_path, "report", "--config", cfg, "--run", FAILED_RUN[:8])

    assert failed.returncode == 1, failed.stderr
    assert "FAILED: run stopped" in failed.stdout and f"run {FAILED_RUN} (nightly)" in failed.stdout
    [written] = (tmp_path / "reports").glob(f"nightly-*-{FAILED_RUN[:8]}.html")
    page = written.read_text(encoding="utf-8")
    assert '<p class="headline status-failed"' in page
    # Its trend stops at that run: the later night is not in it.
    assert "This run alone: no earlier run" in page and "run-1" not in page


def test_given_last_n_when_cmesync_report_then_n_runs_newest_first(ledger: Ledger, tmp_path: Path) -> None:
    nights(ledger)
    cfg = str(config(tmp_path, ledger.url))

    both = cmesync(tmp_path, "report", "--config", cfg, "--last", "5", "--json")

    assert both.returncode == 1, both.stderr
    assert [r["run_id"] for r in both.json()] == ["run-1", FAILED_RUN]
    assert len(list((tmp_path / "reports").glob("nightly-*.html"))) == 2


def test_given_a_run_that_succeeded_when_reported_then_exit_code_0(ledger: Ledger, tmp_path: Path) -> None:
    nights(ledger)
    start_run(ledger, "quiet-night", "nightly")
    finish_run(ledger, "quiet-night", "succeeded", {"records_read": 0})

    quiet = cmesync(tmp_path, "report", "--config", str(config(tmp_path, ledger.url)), "--run", "quiet")

    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("SUCCEEDED: 0 records read")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--run", "nope"), "error: no run with id 'nope'"),
        (("--run", "r"), "error: run id prefix 'r' matches more than one run"),
    ],
    ids=["unknown", "ambiguous"],
)
def test_given_no_such_run_when_cmesync_report_then_one_line_and_exit_code_2(
    ledger: Ledger, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    nights(ledger)
    start_run(ledger, "run-2", "nightly")

    result = cmesync(tmp_path, "report", "--config", str(config(tmp_path, ledger.url)), *args)

    assert result.returncode == 2, result.stderr
    assert says in one_line(result)
    assert not (tmp_path / "reports").exists()


def test_given_a_ledger_that_refuses_us_when_cmesync_report_then_one_masked_line(tmp_path: Path) -> None:
    url = "postgresql://no_such_role:s3cret-pw@127.0.0.1:5432/postgres"

    result = cmesync(tmp_path, "report", CMESYNC_LEDGER_URL=url)

    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert 'role "no_such_role" does not exist' in line and "***" in line
    assert "s3cret-pw" not in result.stderr + result.stdout
