"""The reporting-year close (ACCME FAQ: a year stays open until 31 March of the next), configurable: the
connector refuses an award of a closed year without sending it; the sandbox PARS, configured so, refuses it too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.http import HttpClient
from connectors.registries.ama_pra import AmaPraRegistry, AmaRegistryConfig
from connectors.registries.base import REGISTRY_REJECTED, Failure, Receipt
from connectors.registries.reporting_year import YearClose
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from pipeline.config import ConfigError
from pipeline.factory import build_registry
from tests.registries.conftest import FAST

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits


DEFAULT_CLOSE = YearClose()


def connector(sandbox: AmaSandbox, today: date, close: YearClose | None = DEFAULT_CLOSE) -> AmaPraRegistry:
    client = HttpClient(sandbox.url, headers={"Authorization": "Bearer ama-demo-token"}, retry=FAST)
    return AmaPraRegistry("ama-pra", client, year_close=close, today=lambda: today)


@pytest.fixture
def lenient_sandbox() -> Iterator[AmaSandbox]:
    """A registry taking two years back, so what is refused here is the connector's doing."""
    with AmaSandbox(today=lambda: date(2026, 11, 23), years_back=2) as sandbox:
        yield sandbox


@pytest.mark.parametrize(
    "today, completed, closed",
    [
        (date(2026, 3, 31), date(2025, 6, 1), False),  # the previous year, on its last open day
        (date(2026, 4, 1), date(2025, 6, 1), True),
        (date(2026, 4, 1), date(2026, 1, 2), False),  # the current year is open
        (date(2026, 1, 15), date(2024, 12, 31), True),  # two years back: never
    ],
)
def test_given_the_default_close_when_an_award_is_delivered_then_a_closed_year_is_refused_unsent(
    lenient_sandbox: AmaSandbox, credits: Credits, today: date, completed: date, closed: bool
) -> None:
    record = credits.record(completed_on=completed)

    [result] = connector(lenient_sandbox, today).deliver([record])

    if closed:
        assert isinstance(result, Failure)
        assert result.reason_code == REGISTRY_REJECTED
        year = completed.year
        assert result.message == f"reporting year {year} is closed (open until 03-31 of the next year)"
        assert lenient_sandbox.learner_actions == [] and lenient_sandbox.activities() == {}
    else:
        assert isinstance(result, Receipt)


def test_given_a_close_on_another_day_or_none_when_delivering_then_that_rule_applies(
    lenient_sandbox: AmaSandbox, credits: Credits
) -> None:
    late = credits.record(completed_on=date(2025, 9, 1))

    [with_june] = connector(lenient_sandbox, date(2026, 5, 2), YearClose.parse("06-30")).deliver([late])
    [with_none] = connector(lenient_sandbox, date(2026, 11, 23), None).deliver(
        [credits.record(completed_on=late["completed_on"])]
    )

    assert isinstance(with_june, Receipt) and isinstance(with_none, Receipt)


def test_given_a_revocation_of_a_closed_year_when_delivered_then_it_is_still_sent(
    lenient_sandbox: AmaSandbox, credits: Credits
) -> None:
    award = credits.record(completed_on=date(2025, 9, 1))
    connector(lenient_sandbox, date(2026, 3, 1)).deliver([award])

    [result] = connector(lenient_sandbox, date(2026, 11, 23)).deliver([credits.next_version(award, status="REVOKED")])

    assert isinstance(result, Receipt)
    assert lenient_sandbox.holdings()[award["record_id"]]["status"] == "REVOKED"


def test_given_year_close_in_config_when_built_then_the_connector_uses_it_and_a_non_day_is_refused() -> None:
    assert build_registry(AmaRegistryConfig(name="a", base_url="http://x", token="t")).year_close == YearClose(3, 31)
    assert build_registry(AmaRegistryConfig(name="a", base_url="http://x", token="t", year_close="")).year_close is None
    with pytest.raises(ConfigError, match="year_close 02-30 is not a day of the year"):
        build_registry(AmaRegistryConfig(name="a", base_url="http://x", token="t", year_close="02-30"))
    with pytest.raises(ValidationError):
        AmaRegistryConfig(name="a", base_url="http://x", token="t", year_close="March 31")


@pytest.mark.sandbox
def test_given_the_sandbox_closing_years_on_03_31_when_the_previous_year_arrives_after_then_it_refuses_it(
    credits: Credits,
) -> None:
    with AmaSandbox(today=lambda: date(2026, 11, 23), year_close="03-31") as sandbox:
        unchecked = connector(sandbox, date(2026, 11, 23), None)

        late, fine = unchecked.deliver(
            [credits.record(completed_on=date(2025, 12, 31)), credits.record(completed_on=date(2026, 1, 1))]
        )

    assert isinstance(late, Failure) and isinstance(fine, Receipt)
    assert late.message == "Activity.CompletedDateTime: reporting year 2025 closed on 03-31 of the next year"
