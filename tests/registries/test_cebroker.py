"""The CE Broker connector against its sandbox over real HTTP: XML rosters keyed by licence, state and
profession; hours as partial credit by subject-area code; licences validated before anything is sent; messages
split under the size limit; receipts read node by node; an entry already reported is never sent again."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connectors.http import HttpClient, RetryPolicy
from connectors.registries.base import REGISTRY_REJECTED, Failure, Receipt, RegistryCheckError
from connectors.registries.cebroker import LICENCE_INVALID, CeBrokerRegistry
from connectors.registries.cebroker_xml import Envelope
from deploy.sandbox.cebroker import CeBroker
from tests.registries.conftest import CEBROKER, FAST

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits


def nurses(credits: Credits, count: int) -> list[dict[str, Any]]:
    return [
        credits.record("ANCC_CH", learner=credits.nurse | {"licence_number": f"RN{4488000 + n:07d}"})
        for n in range(count)
    ]


def test_given_contact_hours_and_pharmacology_portion_when_delivered_then_one_entry_per_subject_area(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    contact = credits.record("ANCC_CH", learner=credits.nurse_practitioner, amount="2.00")
    pharm = credits.record("ANCC_PHARM", learner=credits.nurse_practitioner, amount="0.50")

    results = cebroker.deliver([contact, pharm])

    assert all(isinstance(r, Receipt) for r in results)
    rows = cebroker_sandbox.active_rows()
    assert {ref: (row["cd_subject_area"], row["hours"], row["date_completed"]) for ref, row in rows.items()} == {
        f"{contact['record_id']}:1": ("GENERAL", "2.00", "11/17/2026"),
        f"{pharm['record_id']}:1": ("PHARMACOLOGY", "0.50", "11/17/2026"),
    }
    row = rows[f"{contact['record_id']}:1"]
    assert (row["license"], row["cebroker_state"], row["licensee_profession"]) == ("NP7731002", "FL", "NP")
    [course] = cebroker_sandbox.courses().values()
    assert row["id_course"] == course["id_course"] and course["id_course"].startswith("20-")
    assert course["cd_course"] == contact["activity_id"]
    assert [r.receipt_id for r in results] == [rows[f"{r['record_id']}:1"]["id_attendee"] for r in (contact, pharm)]


def test_given_an_invalid_licence_when_delivered_then_licence_invalid_with_the_error_code_and_never_sent(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    truncated = credits.record("ANCC_CH", learner=credits.nurse | {"licence_number": "4488120"})
    unlisted = credits.record("ANCC_CH", learner=credits.nurse_practitioner)
    cebroker_sandbox.unlisted.add("NP7731002")
    valid = credits.record("ANCC_CH", learner=credits.nurse)

    results = cebroker.deliver([truncated, unlisted, valid])

    assert [type(r) for r in results] == [Failure, Failure, Receipt]
    for failure in results[:2]:
        assert isinstance(failure, Failure) and failure.reason_code == LICENCE_INVALID
        assert failure.message == "CE Broker License Validation: ErrorCode 80: Invalid license Number"
    assert [row["license"] for row in cebroker_sandbox.reported] == ["RN4488120"]
    assert len(cebroker_sandbox.message_sizes["rosters"]) == 1


def test_given_only_invalid_licences_when_delivered_then_no_roster_message_is_sent(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    [result] = cebroker.deliver([credits.record("ANCC_CH", learner=credits.nurse | {"licence_state": "ZZ"})])

    assert isinstance(result, Failure) and result.reason_code == LICENCE_INVALID
    assert result.message == "CE Broker License Validation: ErrorCode 82: Invalid state"
    assert "rosters" not in cebroker_sandbox.message_sizes and cebroker_sandbox.rows() == {}


def test_given_a_batch_larger_than_the_message_limit_when_delivered_then_split_into_messages_under_it(
    cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    limit = 2048
    registry = CeBrokerRegistry(
        "cebroker", HttpClient(cebroker_sandbox.url, retry=FAST), CEBROKER, max_message_bytes=limit
    )
    batch = nurses(credits, 12)

    results = registry.deliver(batch)

    assert all(isinstance(r, Receipt) for r in results)
    sizes = cebroker_sandbox.message_sizes["rosters"]
    assert len(sizes) > 1 and max(sizes) <= limit
    assert set(cebroker_sandbox.active_rows()) == {f"{r['record_id']}:1" for r in batch}


def test_given_the_registry_limit_below_ours_when_delivered_then_the_refused_message_is_rejected_and_nothing_held(
    credits: Credits,
) -> None:
    with CeBroker(today=lambda: date(2026, 11, 23), max_message_bytes=1500) as sandbox:
        registry = CeBrokerRegistry("cebroker", HttpClient(sandbox.url, retry=FAST), CEBROKER)
        results = registry.deliver(nurses(credits, 6))

        assert {(type(r), getattr(r, "reason_code", None)) for r in results} == {(Failure, REGISTRY_REJECTED)}
        assert "413" in results[0].message and sandbox.rows() == {}


def test_given_a_receipt_with_mixed_results_when_read_then_each_record_gets_its_own_node_message(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    accepted = credits.record("ANCC_CH", learner=credits.nurse)
    future = credits.record("ANCC_CH", learner=credits.nurse_practitioner, completed_on=date(2026, 12, 1))
    rn_pharmacology = credits.record("ANCC_PHARM", learner=credits.nurse)

    results = cebroker.deliver([accepted, future, rn_pharmacology])

    assert len(cebroker_sandbox.message_sizes["rosters"]) == 1, "one message carried the three"
    assert isinstance(results[0], Receipt)
    assert [(r.reason_code, r.message) for r in results[1:] if isinstance(r, Failure)] == [
        (REGISTRY_REJECTED, "date_completed: must not be in the future"),
        (REGISTRY_REJECTED, "cd_subject_area: PHARMACOLOGY hours are reported for NP, CNS"),
    ]
    assert set(cebroker_sandbox.active_rows()) == {f"{accepted['record_id']}:1"}
    assert not {"RN4488120", "Isabel", "Moreno"} & {w for r in results[1:] for w in r.message.split()}  # type: ignore[union-attr]


def test_given_entries_already_reported_when_the_batch_is_delivered_again_then_nothing_is_sent_twice(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    batch = [
        credits.record("ANCC_CH", learner=credits.nurse),
        credits.record("ANCC_CH", learner=credits.nurse_practitioner),
    ]
    first = cebroker.deliver(batch)  # as if the run died before the ledger stored these receipts

    again = cebroker.deliver(batch)

    assert again == first
    assert len(cebroker_sandbox.message_sizes["rosters"]) == 1, "the rerun sent a roster again"
    assert cebroker_sandbox.refused_duplicates == 0
    assert len(cebroker_sandbox.reported) == 2 and len(cebroker_sandbox.rows()) == 2


def test_given_reported_v1_when_v2_changes_the_hours_then_v1_is_deleted_and_v2_reported(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    v1 = credits.record("ANCC_CH", learner=credits.nurse, amount="1.00")
    cebroker.deliver([v1])
    v2 = credits.next_version(v1, amount=Decimal("1.25"))

    [result] = cebroker.deliver([v2])

    assert isinstance(result, Receipt)
    assert {ref: row["hours"] for ref, row in cebroker_sandbox.active_rows().items()} == {
        f"{v1['record_id']}:2": "1.25"
    }
    statuses = sorted((row["external_ref"], row["status"]) for row in cebroker_sandbox.rows().values())
    assert statuses == [(f"{v1['record_id']}:1", "DELETED"), (f"{v1['record_id']}:2", "ACTIVE")]
    assert cebroker_sandbox.refused_duplicates == 0


def test_given_reported_entry_when_the_credit_is_revoked_then_the_entry_is_deleted(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    v1 = credits.record("ANCC_CH", learner=credits.nurse)
    cebroker.deliver([v1])

    [result] = cebroker.deliver([credits.next_version(v1, status="REVOKED")])
    [again] = cebroker.deliver([credits.next_version(v1, status="REVOKED")])

    assert isinstance(result, Receipt) and isinstance(again, Receipt)
    assert cebroker_sandbox.active_rows() == {}
    [row] = cebroker_sandbox.rows().values()
    assert row["status"] == "DELETED"


def test_given_nurse_credits_when_asked_then_only_licensed_nurses_contact_hours_are_accepted(
    cebroker: CeBrokerRegistry, credits: Credits
) -> None:
    assert cebroker.accepts(credits.record("ANCC_CH", learner=credits.nurse))
    assert cebroker.accepts(credits.record("ANCC_PHARM", learner=credits.nurse_practitioner))
    assert not cebroker.accepts(credits.record("ANCC_CH", learner=credits.nurse | {"licence_number": None}))
    assert not cebroker.accepts(credits.record("ANCC_CH", learner=credits.physician))
    assert not cebroker.accepts(credits.record("AMA_PRA_1", learner=credits.nurse))


def test_given_holdings_over_several_pages_when_listed_then_entries_in_our_terms(
    cebroker: CeBrokerRegistry, credits: Credits
) -> None:
    batch = [credits.record("ANCC_CH", learner=credits.nurse, activity_id=f"ACT-{n}") for n in range(5)]
    cebroker.deliver(batch)
    cebroker.deliver([credits.next_version(batch[0], status="REVOKED")])

    entries = sorted((e.record_id, e.version, e.status, e.amount, e.completed_on) for e in cebroker.holdings())

    expected = [(r["record_id"], 1, "AWARDED", Decimal("1.50"), date(2026, 11, 17)) for r in batch[1:]]
    expected.append((batch[0]["record_id"], 1, "REVOKED", Decimal("1.50"), date(2026, 11, 17)))
    assert entries == sorted(expected)


@pytest.mark.parametrize(
    "upload_key, provider, status", [("wrong", "50-1001", 401), ("cebroker-demo-key", "50-9", 403)]
)
def test_given_wrong_key_or_provider_when_checked_then_credentials_refused(
    cebroker_sandbox: CeBroker, upload_key: str, provider: str, status: int
) -> None:
    client = HttpClient(cebroker_sandbox.url, retry=RetryPolicy(max_attempts=1))
    registry = CeBrokerRegistry("cebroker", client, Envelope(provider, provider, upload_key))

    with pytest.raises(RegistryCheckError, match=rf"registry cebroker: credentials refused \({status}\)"):
        registry.check()


def test_given_right_key_when_checked_then_it_passes(cebroker: CeBrokerRegistry) -> None:
    cebroker.check()


def test_given_the_answer_to_a_roster_lost_when_the_retry_is_refused_as_reported_then_it_is_delivered_once(
    cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits
) -> None:
    record = credits.record("ANCC_CH", learner=credits.nurse)
    cebroker_sandbox.lost_responses["/ws/rosters"] = 1

    [result] = cebroker.deliver([record])

    [held] = cebroker_sandbox.active_rows().values()
    assert result == Receipt(record["record_id"], 1, held["id_attendee"])
    assert (len(cebroker_sandbox.reported), cebroker_sandbox.refused_duplicates) == (1, 1)
