"""The outcome mapping (pipeline/outcome.py): what a run did → status, exit code, message, replay commands."""

from __future__ import annotations

import pytest

from pipeline.outcome import FAILED, PARTIAL, SUCCEEDED, outcome_of, status_exit_code


def test_given_no_failure_when_mapped_then_the_run_succeeded_with_exit_code_0() -> None:
    outcome = outcome_of({"ama-pra": 0, "ancc": 0}, {"ama-pra": {"unavailable": 0}})

    assert (outcome.status, outcome.exit_code, outcome.message, outcome.replay_commands) == (
        SUCCEEDED,
        0,
        "run succeeded",
        [],
    )


def test_given_failed_deliveries_and_an_unreadable_registry_when_mapped_then_partial_naming_both() -> None:
    outcome = outcome_of({"ama-pra": 29, "ancc": 0}, {"ancc": {"unavailable": 1}}, config_path="prod cfg.toml")

    assert (outcome.status, outcome.exit_code, outcome.failing_registries) == (PARTIAL, 1, ["ama-pra", "ancc"])
    assert outcome.replay_commands == ["cmesync replay --registry ama-pra --config 'prod cfg.toml'"]
    assert outcome.message == (
        "run partial: ama-pra: 29 deliveries failed; ancc: registry diff unavailable (holdings not read); "
        "then run `cmesync replay --registry ama-pra --config 'prod cfg.toml'`"
    )


def test_given_an_error_when_mapped_then_the_run_failed_whatever_else_happened() -> None:
    outcome = outcome_of({}, {}, error="OperationalError: database is locked")

    assert (outcome.status, outcome.exit_code) == (FAILED, 1)
    assert outcome.message.startswith("run failed: run stopped: OperationalError")


@pytest.mark.parametrize(
    ("last", "last_failed", "backlog", "code"),
    [
        (None, 0, [], 0),
        (SUCCEEDED, 0, [0], 0),
        (SUCCEEDED, 0, [3], 1),  # deliveries awaiting a replay, whatever the last run did
        (PARTIAL, 5, [5], 1),
        (PARTIAL, 5, [0], 0),  # its failed deliveries were all replayed
        (PARTIAL, 0, [0], 1),  # partial for an unreadable registry
        (FAILED, 0, [0], 1),
    ],
)
def test_given_the_last_run_and_the_backlog_when_status_maps_them_then_its_exit_code(
    last: str | None, last_failed: int, backlog: list[int], code: int
) -> None:
    assert status_exit_code(last, last_failed, backlog) == code
