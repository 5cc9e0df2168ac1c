"""The ANCC connector against its CE Broker-style sandbox over real HTTP: rows keyed by licence, state and
profession; hours by subject area; a row already reported is refused, which is delivered when it is the same row."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connectors.http import HttpClient, RetryPolicy
from connectors.registries.ancc import AnccRegistry
from connectors.registries.base import REGISTRY_REJECTED, Failure, Receipt, RegistryCheckError
from deploy.sandbox.ancc_registry import AnccRegistry as AnccSandbox

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits


def test_given_contact_hours_and_pharmacology_portion_when_delivered_then_one_row_per_subject_area(
    ancc: AnccRegistry, ancc_sandbox: AnccSandbox, credits: Credits
) -> None:
    contact = credits.record("ANCC_CH", learner=credits.nurse_practitioner, amount="2.00")
    pharm = credits.record("ANCC_PHARM", learner=credits.nurse_practitioner, amount="0.50")

    results = ancc.deliver([contact, pharm])

    assert all(isinstance(r, Receipt) for r in results)
    rows = ancc_sandbox.active_rows()
    assert {ref: (row["subject_area"], row["hours"], row["completion_date"]) for ref, row in rows.items()} == {
        f"{contact['record_id']}:1": ("GENERAL", 2.0, "11/17/2026"),
        f"{pharm['record_id']}:1": ("PHARMACOLOGY", 0.5, "11/17/2026"),
    }
    row = rows[f"{contact['record_id']}:1"]
    assert (row["license_number"], row["license_state"], row["profession_code"]) == ("NP7731002", "FL", "NP")
    assert [r.receipt_id for r in results] == [rows[f"{r['record_id']}:1"]["row_id"] for r in (contact, pharm)]


def test_given_rows_already_reported_when_delivered_again_then_the_refusal_counts_as_delivered_and_no_row_is_added(
    ancc: AnccRegistry, ancc_sandbox: AnccSandbox, credits: Credits
) -> None:
    batch = [
        credits.record("ANCC_CH", learner=credits.nurse),
        credits.record("ANCC_CH", learner=credits.nurse_practitioner),
    ]
    first = ancc.deliver(batch)

    again = ancc.deliver(batch)

    assert again == first
    assert len(ancc_sandbox.reported) == 2
    assert len(ancc_sandbox.rows()) == 2


def test_given_reported_v1_when_v2_changes_the_hours_then_v1_row_is_withdrawn_and_v2_reported(
    ancc: AnccRegistry, ancc_sandbox: AnccSandbox, credits: Credits
) -> None:
    v1 = credits.record("ANCC_CH", learner=credits.nurse, amount="1.00")
    ancc.deliver([v1])
    v2 = credits.next_version(v1, amount=Decimal("1.25"))

    [result] = ancc.deliver([v2])

    assert isinstance(result, Receipt)
    assert {ref: row["hours"] for ref, row in ancc_sandbox.active_rows().items()} == {f"{v1['record_id']}:2": 1.25}
    statuses = sorted((row["external_ref"], row["status"]) for row in ancc_sandbox.rows().values())
    assert statuses == [(f"{v1['record_id']}:1", "WITHDRAWN"), (f"{v1['record_id']}:2", "ACTIVE")]


def test_given_reported_row_when_the_credit_is_revoked_then_the_row_is_withdrawn(
    ancc: AnccRegistry, ancc_sandbox: AnccSandbox, credits: Credits
) -> None:
    v1 = credits.record("ANCC_CH", learner=credits.nurse)
    ancc.deliver([v1])

    [result] = ancc.deliver([credits.next_version(v1, status="REVOKED")])
    [again] = ancc.deliver([credits.next_version(v1, status="REVOKED")])

    assert isinstance(result, Receipt) and isinstance(again, Receipt)
    assert ancc_sandbox.active_rows() == {}
    [row] = ancc_sandbox.rows().values()
    assert (row["status"], row["withdrawn_ref"]) == ("WITHDRAWN", f"{v1['record_id']}:2")


@pytest.mark.parametrize(
    "credit_type, learner_changes, error",
    [
        ("ANCC_PHARM", {}, "subject_area: PHARMACOLOGY hours are reported for NP and CNS only"),
        ("ANCC_CH", {"licence_number": "rn 44-8812"}, "license_number: must be 3-20 upper-case letters"),
        ("ANCC_CH", {"licence_state": "ZZ"}, "license_state: must be a US state or territory code"),
    ],
)
def test_given_a_row_the_board_refuses_when_delivered_then_rejected_naming_the_field_never_the_value(
    ancc: AnccRegistry, ancc_sandbox: AnccSandbox, credits: Credits, credit_type: str, learner_changes: dict, error: str
) -> None:
    record = credits.record(credit_type, learner=credits.nurse | learner_changes)

    [result] = ancc.deliver([record])

    assert isinstance(result, Failure)
    assert result.reason_code == REGISTRY_REJECTED
    assert result.message.startswith(error)
    assert not {"RN4488120", "rn 44-8812", "Isabel", "Moreno"} & set(result.message.split())
    assert ancc_sandbox.rows() == {}


def test_given_completion_in_the_future_when_delivered_then_rejected(ancc: AnccRegistry, credits: Credits) -> None:
    [result] = ancc.deliver([credits.record("ANCC_CH", learner=credits.nurse, completed_on=date(2026, 12, 1))])

    assert isinstance(result, Failure) and result.message == "completion_date: must not be in the future"


def test_given_nurse_credits_when_asked_then_only_licensed_nurses_contact_hours_are_accepted(
    ancc: AnccRegistry, credits: Credits
) -> None:
    assert ancc.accepts(credits.record("ANCC_CH", learner=credits.nurse))
    assert ancc.accepts(credits.record("ANCC_PHARM", learner=credits.nurse_practitioner))
    assert not ancc.accepts(credits.record("ANCC_CH", learner=credits.nurse | {"licence_number": None}))
    assert not ancc.accepts(credits.record("ANCC_CH", learner=credits.physician))
    assert not ancc.accepts(credits.record("AMA_PRA_1", learner=credits.nurse))


def test_given_holdings_over_several_pages_when_listed_then_rows_in_our_terms(
    ancc: AnccRegistry, credits: Credits
) -> None:
    batch = [credits.record("ANCC_CH", learner=credits.nurse, activity_id=f"ACT-{n}") for n in range(5)]
    ancc.deliver(batch)
    ancc.deliver([credits.next_version(batch[0], status="REVOKED")])

    entries = sorted((e.record_id, e.version, e.status, e.amount, e.completed_on) for e in ancc.holdings())

    expected = [(r["record_id"], 1, "AWARDED", Decimal("1.50"), date(2026, 11, 17)) for r in batch[1:]]
    expected.append((batch[0]["record_id"], 1, "REVOKED", Decimal("1.50"), date(2026, 11, 17)))
    assert entries == sorted(expected)


@pytest.mark.parametrize("api_key, provider, status", [("wrong", "CEP-1001", 401), ("ancc-demo-key", "CEP-9", 403)])
def test_given_wrong_key_or_provider_when_checked_then_credentials_refused(
    ancc_sandbox: AnccSandbox, api_key: str, provider: str, status: int
) -> None:
    client = HttpClient(ancc_sandbox.url, headers={"X-Api-Key": api_key}, retry=RetryPolicy(max_attempts=1))

    with pytest.raises(RegistryCheckError, match=rf"registry ancc: credentials refused \({status}\)"):
        AnccRegistry("ancc", client, provider).check()


def test_given_right_key_when_checked_then_it_passes(ancc: AnccRegistry) -> None:
    ancc.check()
