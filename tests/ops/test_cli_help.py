"""Every `cmesync` command explains itself: `--help` works and shows examples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app, moment

COMMANDS = [
    ("run",),
    ("replay",),
    ("deadletters",),
    ("deadletters", "list"),
    ("deadletters", "show"),
    ("deadletters", "retry"),
    ("deadletters", "resolve"),
    ("status",),
    ("config",),
    ("config", "check"),
    ("serve",),
    ("stream",),
    ("report",),
    ("export",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_given_a_command_when_asked_for_help_then_it_prints_usage_and_examples(command: tuple[str, ...]) -> None:
    helped = CliRunner().invoke(app, [*command, "--help"], prog_name="cmesync")

    assert helped.exit_code == 0
    shown = helped.stdout
    assert f"Usage: cmesync {' '.join(command)}" in shown
    assert "examples:" in shown


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T06:00", datetime(2026, 11, 20, 6, tzinfo=UTC)),
        ("2026-11-20T06:00Z", datetime(2026, 11, 20, 6, tzinfo=UTC)),
        ("2026-11-20T01:00-05:00", datetime(2026, 11, 20, 6, tzinfo=UTC)),
    ],
)
def test_given_an_absolute_time_when_parsed_then_naive_means_utc(text: str, instant: datetime) -> None:
    parsed = moment(text)

    assert parsed == instant and parsed.utcoffset() is not None


def test_given_a_relative_time_when_parsed_then_later_units_reach_further_back() -> None:
    assert moment("3d") < moment("12h") < moment("90m")


@pytest.mark.parametrize("text", ["yesterday", "12 h", "2026-13-01", "-3d"])
def test_given_a_malformed_time_when_parsed_then_it_is_an_argument_error(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="not a time"):
        moment(text)
