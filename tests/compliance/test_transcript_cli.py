"""`cmesync transcript` as an operator runs it: the real command (in process) against the ledger (SQLite and
PostgreSQL), with its output formats and exit codes (0 not at risk, 1 at risk, 2 unknown learner/profile or bad
arguments)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests import in_process
from tests.compliance.conftest import EMAIL_B, NPI_A, World

pytestmark = pytest.mark.integration


def cmesync(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process.cmesync("transcript", *args, "--config", str(world.config_path))


def test_given_learners_when_transcripts_are_asked_for_then_formats_and_exit_codes_follow_the_risk(
    world: World,
) -> None:
    world.credit(world.learner_a, "ACT-004", "3.75", date(2026, 11, 20))
    world.credit(world.learner_b, "ACT-006", "4.00", date(2026, 10, 1))

    at_risk = cmesync(world, NPI_A, "--as-of", "2026-11-23", "--json")
    on_track = cmesync(world, EMAIL_B, "--as-of", "2026-11-23", "--format", "csv")
    page = cmesync(world, world.learner_a, "--as-of", "2026-11-23", "--format", "html")

    assert at_risk.returncode == 1, at_risk.stderr
    data = json.loads(at_risk.stdout)
    assert (data["learner_id"], data["at_risk"], data["as_of"]) == (world.learner_a, True, "2026-11-23")
    [cycle] = data["cycles"]
    assert (cycle["profile"]["id"], cycle["days_to_deadline"], cycle["status"]) == ("ca-md", 69, "at risk")
    assert [(r["id"], r["counted"], r["missing"]) for r in cycle["requirements"]] == [
        ("total", "3.75", "46.25"),
        ("pain-management", "3.75", "8.25"),
    ]
    assert on_track.returncode == 0, on_track.stderr
    rows = list(csv.DictReader(io.StringIO(on_track.stdout)))
    assert [(r["employee_id"], r["requirement"], r["counted"], r["met"]) for r in rows] == [
        ("E-2", "total", "4.00", "no"),
        ("E-2", "formal", "4.00", "no"),
        ("E-2", "ethics", "4.00", "yes"),
    ]
    assert page.returncode == 1 and page.stdout.startswith("<!doctype html>")
    for result in (at_risk, on_track, page):
        assert NPI_A not in result.stdout + result.stderr and EMAIL_B not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nobody@example.org",), "no learner in the ledger or on the roster"),
        ((NPI_A, "--profile", "xx-none"), "no profile 'xx-none'"),
        ((NPI_A, "--as-of", "2026-13-01"), "not a date"),
    ],
)
def test_given_an_unknown_learner_profile_or_date_when_asked_then_the_command_exits_2(
    world: World, args: tuple[str, ...], message: str
) -> None:
    result = cmesync(world, *args)

    assert result.returncode == 2
    assert message in result.stderr


def test_given_a_broken_profile_file_when_asked_then_it_is_a_configuration_error_naming_file_and_field(
    world: World, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "bad.toml").write_text('id = "bad"\nname = "Bad"\nboard = "B"\nsource = "s"\nexample = true\n')
    config = world.config_path.read_text().replace(str(Path(world.settings().compliance.profiles_dir)), str(profiles))
    world.config_path.write_text(config)

    result = cmesync(world, NPI_A)

    assert result.returncode == 2
    assert "configuration error" in result.stderr and "bad.toml: cycle_months: Field required" in result.stderr


def test_given_the_transcript_command_when_asked_for_help_then_it_documents_exit_codes_and_examples() -> None:
    helped = CliRunner().invoke(app, ["transcript", "--help"], prog_name="cmesync")

    shown = helped.stdout
    assert helped.exit_code == 0
    assert "Usage: cmesync transcript" in shown and "examples:" in shown and "Exit code 0" in shown
