"""The sandbox AMA PRA-style registry over real HTTP: auth, per-item idempotency, validation, holdings paging."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
import requests

from deploy.sandbox.ama_registry import AmaPraRegistry, npi_is_valid
from deploy.sandbox.base import Faults

ItemFactory = Callable[..., dict[str, Any]]


def post_credits(
    session: requests.Session, registry: AmaPraRegistry, *items: dict[str, Any], key: str | None = None
) -> requests.Response:
    return session.post(
        f"{registry.url}/v1/credits",
        json={"credits": list(items)},
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
        timeout=5,
    )


def results(session: requests.Session, registry: AmaPraRegistry, *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = post_credits(session, registry, *items)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def post_batch(session: requests.Session, registry: AmaPraRegistry, field: str, *items: Any) -> list[dict[str, Any]]:
    """POST to /v1/<field> (activities, revocations, deletions) and return the per-item results."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    response = session.post(f"{registry.url}/v1/{field}", json={field: list(items)}, headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def revocation(record_id: str = "rec-1", version: int = 2) -> dict[str, Any]:
    return {"idempotency_key": f"{record_id}:{version}", "record_id": record_id, "version": version}


@pytest.fixture(autouse=True)
def registered_activity(request: pytest.FixtureRequest) -> None:
    """PARS-like, learners are reported only against a registered activity; the items here report on ACT-001."""
    if "ama" in request.fixturenames:
        ama, session = request.getfixturevalue("ama"), request.getfixturevalue("ama_session")
        post_batch(session, ama, "activities", {"activity_id": "ACT-001", "title": "Sepsis Recognition in the ED"})


def all_holdings(session: requests.Session, registry: AmaPraRegistry, **params: Any) -> tuple[list[dict], int]:
    """Page through GET /v1/holdings; returns the entries and the number of pages."""
    entries: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = session.get(f"{registry.url}/v1/holdings", params=params, timeout=5)
        assert response.status_code == 200, response.text
        body = response.json()
        entries += body["entries"]
        pages += 1
        if body["next_page_token"] is None:
            return entries, pages
        params = {**params, "page_token": body["next_page_token"]}


# -- auth and request shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/v1/credits"),
        ("POST", "/v1/activities"),
        ("POST", "/v1/revocations"),
        ("POST", "/v1/deletions"),
        ("GET", "/v1/holdings"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic YTpi"])
def test_given_missing_or_wrong_bearer_when_calling_any_route_then_401(
    ama: AmaPraRegistry, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Idempotency-Key": "k"} | ({"Authorization": authorization} if authorization else {})

    response = requests.request(method, f"{ama.url}{path}", json={"credits": []}, headers=headers, timeout=5)

    assert response.status_code == 401


def test_given_no_idempotency_key_header_when_posting_credits_then_400_and_nothing_accepted(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    response = ama_session.post(f"{ama.url}/v1/credits", json={"credits": [credit_item()]}, timeout=5)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]
    assert ama.accepted == []


@pytest.mark.parametrize("body", [[], {"items": []}, {"credits": {}}, {"credits": "x"}, None])
def test_given_body_not_shaped_as_credits_list_when_posting_then_400(
    ama: AmaPraRegistry, ama_session: requests.Session, body: Any
) -> None:
    response = ama_session.post(f"{ama.url}/v1/credits", json=body, headers={"Idempotency-Key": "k"}, timeout=5)

    assert response.status_code == 400


def test_given_more_than_500_items_when_posting_then_400_and_nothing_accepted(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    items = [credit_item(record_id=f"rec-{n}") for n in range(501)]

    response = post_credits(ama_session, ama, *items)

    assert response.status_code == 400
    assert ama.accepted == []


# -- accepted and duplicate ------------------------------------------------------------------------------------


def test_given_valid_item_when_posting_then_accepted_with_receipt_and_held(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    item = credit_item()

    [result] = results(ama_session, ama, item)

    assert result["outcome"] == "accepted"
    assert result["idempotency_key"] == "rec-1:1"
    assert result["error"] is None
    assert uuid.UUID(result["receipt_id"]).version == 4
    holding = ama.holdings()["rec-1"]
    assert holding == item | {"receipt_id": result["receipt_id"], "received_at": holding["received_at"]}
    assert holding["received_at"].endswith("Z")


def test_given_key_already_accepted_when_posted_again_then_duplicate_with_same_receipt_and_no_second_acceptance(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    [first] = results(ama_session, ama, credit_item())
    before = ama.holdings()

    [again] = results(ama_session, ama, credit_item(amount="9.00"))

    assert again == first | {"outcome": "duplicate"}
    assert ama.holdings() == before
    assert [a["idempotency_key"] for a in ama.accepted] == ["rec-1:1"]


def test_given_same_key_twice_in_one_batch_when_posting_then_second_is_duplicate_of_first(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    first, second = results(ama_session, ama, credit_item(), credit_item())

    assert (first["outcome"], second["outcome"]) == ("accepted", "duplicate")
    assert second["receipt_id"] == first["receipt_id"]
    assert len(ama.accepted) == 1


def test_given_mixed_batch_when_posting_then_results_in_request_order(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    batch = [credit_item("a"), credit_item("b", credit_type="ANCC_CH"), credit_item("c"), credit_item("a")]

    outcomes = [(r["idempotency_key"], r["outcome"]) for r in results(ama_session, ama, *batch)]

    assert outcomes == [("a:1", "accepted"), ("b:1", "rejected"), ("c:1", "accepted"), ("a:1", "duplicate")]


def test_given_board_id_without_npi_when_posting_then_accepted(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    [result] = results(ama_session, ama, credit_item(npi=None, board_id="ABIM-123456"))

    assert result["outcome"] == "accepted"


# -- rejected --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"npi": "1234567890"}, "npi: fails the NPI check digit"),
        ({"npi": "12345"}, "npi: must be 10 digits"),
        ({"npi": None}, "npi: npi or board_id is required"),
        ({"completed_on": "2024-12-31"}, "completed_on: must not be before 1 January of the previous calendar year"),
        ({"completed_on": "2026-11-24"}, "completed_on: must not be in the future"),
        ({"completed_on": "17/11/2026"}, "completed_on: must be a date YYYY-MM-DD"),
        ({"credit_type": "ANCC_CH"}, "credit_type: must be AMA_PRA_1 or AMA_PRA_2"),
        ({"amount": 1.5}, "amount: must be a decimal string with at most 2 decimals"),
        ({"amount": "1.505"}, "amount: must be a decimal string with at most 2 decimals"),
        ({"amount": "0.00"}, "amount: must be > 0 and <= 999.99"),
        ({"first_name": " "}, "first_name: must be a non-empty string"),
        ({"last_name": None}, "last_name: must be a non-empty string"),
        ({"dob_month_day": "02-30"}, "dob_month_day: must be a real month and day as MM-DD"),
        ({"status": "PENDING"}, "status: must be AWARDED (revocations go to /v1/revocations)"),
        ({"status": "REVOKED"}, "status: must be AWARDED (revocations go to /v1/revocations)"),
        ({"version": 0, "idempotency_key": "rec-1:0"}, "version: must be an integer >= 1"),
        ({"idempotency_key": "rec-1"}, "idempotency_key: must be '<record_id>:<version>'"),
    ],
)
def test_given_invalid_item_when_posting_then_rejected_naming_field_and_rule_not_value(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory, overrides: dict, field: str
) -> None:
    item = credit_item(**overrides)

    [result] = results(ama_session, ama, item)

    assert result["outcome"] == "rejected"
    assert result["receipt_id"] is None
    assert result["error"] == field
    for value in overrides.values():
        if isinstance(value, str) and value.strip():
            assert value not in result["error"]
    assert ama.holdings() == {}
    assert ama.accepted == []


def test_given_completion_on_first_day_of_previous_year_when_posting_then_accepted(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    [result] = results(ama_session, ama, credit_item(completed_on="2025-01-01"))

    assert result["outcome"] == "accepted"


def test_given_several_problems_when_posting_then_every_field_is_named(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    [result] = results(ama_session, ama, credit_item(credit_type="X", amount="-1"))

    assert "credit_type:" in result["error"]
    assert "amount:" in result["error"]


def test_given_non_object_item_when_posting_then_rejected_without_key(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    [result] = results(ama_session, ama, "not an item")  # type: ignore[arg-type]

    assert result == {"idempotency_key": None, "outcome": "rejected", "receipt_id": None, "error": result["error"]}
    assert result["error"].startswith("item:")


def test_given_held_version_when_lower_or_equal_version_arrives_with_new_key_then_rejected_as_stale(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item(version=2))

    [result] = results(ama_session, ama, credit_item(version=1))

    assert result["outcome"] == "rejected"
    assert "stale version" in result["error"]
    assert ama.holdings()["rec-1"]["version"] == 2


# -- versions and revocation ---------------------------------------------------------------------------------


def test_given_awarded_v1_when_awarded_v2_arrives_then_refused_as_an_edit_and_holding_unchanged(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item(amount="1.00"))

    [result] = results(ama_session, ama, credit_item(version=2, amount="1.50"))

    assert result["outcome"] == "rejected"
    assert result["error"] == "record_id: already reported; records cannot be edited, delete it"
    assert (ama.holdings()["rec-1"]["version"], ama.holdings()["rec-1"]["amount"]) == (1, "1.00")


def test_given_awarded_v1_when_deleted_below_v2_then_v2_is_accepted_as_a_correction(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item(amount="1.00"))

    [deleted] = post_batch(ama_session, ama, "deletions", {"record_id": "rec-1", "versions_below": 2})
    [result] = results(ama_session, ama, credit_item(version=2, amount="1.50"))

    assert deleted == {"record_id": "rec-1", "outcome": "deleted", "error": None}
    holding = ama.holdings()["rec-1"]
    assert (holding["version"], holding["amount"], holding["receipt_id"]) == (2, "1.50", result["receipt_id"])
    assert [a["idempotency_key"] for a in ama.accepted] == ["rec-1:1", "rec-1:2"]


def test_given_v2_held_when_deletion_below_v2_is_repeated_then_nothing_is_deleted(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item(version=2))

    [again] = post_batch(ama_session, ama, "deletions", {"record_id": "rec-1", "versions_below": 2})
    [unknown] = post_batch(ama_session, ama, "deletions", {"record_id": "nobody", "versions_below": 9})

    assert (again["outcome"], unknown["outcome"]) == ("nothing_to_delete", "nothing_to_delete")
    assert ama.holdings()["rec-1"]["version"] == 2


@pytest.mark.parametrize(
    "item, error",
    [
        ({"record_id": "rec-1", "versions_below": 0}, "versions_below: must be an integer >= 1"),
        ({"record_id": " ", "versions_below": 2}, "record_id: must be a non-empty string"),
        ("rec-1", "item: must be a JSON object"),
    ],
)
def test_given_malformed_deletion_when_posting_then_rejected(
    ama: AmaPraRegistry, ama_session: requests.Session, item: Any, error: str
) -> None:
    [result] = post_batch(ama_session, ama, "deletions", item)

    assert (result["outcome"], result["error"]) == ("rejected", error)


def test_given_awarded_holding_when_revoked_v2_arrives_then_holding_kept_and_marked_revoked(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item(amount="1.25"))

    [result] = post_batch(ama_session, ama, "revocations", revocation(version=2))

    holding = ama.holdings()["rec-1"]
    assert result["outcome"] == "accepted"
    assert (holding["status"], holding["version"], holding["amount"]) == ("REVOKED", 2, "1.25")
    assert holding["idempotency_key"] == "rec-1:2"


def test_given_revocation_already_accepted_when_posted_again_then_duplicate_with_same_receipt(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item())
    [first] = post_batch(ama_session, ama, "revocations", revocation())

    [again] = post_batch(ama_session, ama, "revocations", revocation())

    assert again == first | {"outcome": "duplicate"}
    assert len(ama.accepted) == 2


def test_given_revoked_holding_when_a_later_award_arrives_then_it_is_accepted(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item())
    post_batch(ama_session, ama, "revocations", revocation(version=2))

    [result] = results(ama_session, ama, credit_item(version=3, amount="0.50"))

    assert result["outcome"] == "accepted"
    assert (ama.holdings()["rec-1"]["status"], ama.holdings()["rec-1"]["amount"]) == ("AWARDED", "0.50")


@pytest.mark.parametrize(
    "item, error",
    [
        ({"idempotency_key": "rec-1:2", "record_id": "rec-1", "version": 3}, "idempotency_key: must be"),
        ({"idempotency_key": "rec-1:0", "record_id": "rec-1", "version": 0}, "version: must be an integer >= 1"),
    ],
)
def test_given_malformed_revocation_when_posting_then_rejected_and_nothing_held(
    ama: AmaPraRegistry, ama_session: requests.Session, item: dict[str, Any], error: str
) -> None:
    [result] = post_batch(ama_session, ama, "revocations", item)

    assert result["outcome"] == "rejected"
    assert error in result["error"]
    assert ama.holdings() == {}


def test_given_nothing_held_when_revocation_arrives_then_accepted_and_held_as_revoked(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    # The award may never have been delivered; accepting the revocation keeps registry and ledger converging.
    [result] = post_batch(ama_session, ama, "revocations", revocation(version=2))

    assert result["outcome"] == "accepted"
    assert ama.holdings()["rec-1"]["status"] == "REVOKED"


# -- activities ----------------------------------------------------------------------------------------------


def test_given_unregistered_activity_when_reporting_a_learner_then_rejected_until_it_is_registered(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    [before] = results(ama_session, ama, credit_item(activity_id="ACT-777"))
    [registered] = post_batch(ama_session, ama, "activities", {"activity_id": "ACT-777", "title": "New activity"})
    [after] = results(ama_session, ama, credit_item(activity_id="ACT-777"))

    assert before["outcome"] == "rejected"
    assert before["error"].startswith("activity_id: activity is not registered")
    assert registered == {"activity_id": "ACT-777", "outcome": "registered", "error": None}
    assert after["outcome"] == "accepted"


def test_given_registered_activity_when_registered_again_then_already_registered_and_kept_once(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    [again] = post_batch(ama_session, ama, "activities", {"activity_id": "ACT-001", "title": "Another title"})

    assert again["outcome"] == "already_registered"
    assert ama.activities() == {"ACT-001": {"activity_id": "ACT-001", "title": "Sepsis Recognition in the ED"}}


def test_given_activity_without_title_when_registering_then_rejected(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    [result] = post_batch(ama_session, ama, "activities", {"activity_id": "ACT-9", "title": ""})

    assert (result["outcome"], result["error"]) == ("rejected", "title: must be a non-empty string")
    assert "ACT-9" not in ama.activities()


def test_given_registry_configured_two_years_back_when_completions_straddle_that_limit_then_only_the_later_accepted(
    ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    with AmaPraRegistry(today=lambda: date(2026, 11, 23), years_back=2) as registry:
        post_batch(ama_session, registry, "activities", {"activity_id": "ACT-001", "title": "Sepsis"})
        inside, outside = results(
            ama_session,
            registry,
            credit_item("inside", completed_on="2024-01-01"),
            credit_item("outside", completed_on="2023-12-31"),
        )

    assert inside["outcome"] == "accepted"
    assert (outside["outcome"], outside["error"]) == (
        "rejected",
        "completed_on: must not be before 1 January, 2 calendar years ago",
    )


def test_given_concurrent_retries_of_one_item_when_posting_then_exactly_one_acceptance_and_one_receipt(
    ama: AmaPraRegistry, credit_item: ItemFactory
) -> None:
    def post_once(_: int) -> dict[str, Any]:
        with requests.Session() as session:
            session.headers["Authorization"] = "Bearer ama-demo-token"
            return results(session, ama, credit_item())[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(post_once, range(16)))

    assert sorted(o["outcome"] for o in outcomes) == ["accepted"] + ["duplicate"] * 15
    assert len({o["receipt_id"] for o in outcomes}) == 1
    assert len(ama.accepted) == 1


# -- holdings --------------------------------------------------------------------------------------------------


def test_given_five_holdings_when_paging_by_two_then_each_once_ordered_by_received_at_then_record_id(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    for record_id in ("e", "d", "c", "b", "a"):
        results(ama_session, ama, credit_item(record_id))

    entries, pages = all_holdings(ama_session, ama, page_size=2)

    assert pages == 3
    assert sorted(e["record_id"] for e in entries) == ["a", "b", "c", "d", "e"]
    assert entries == sorted(entries, key=lambda e: (e["received_at"], e["record_id"]))


def test_given_holdings_with_equal_received_at_when_paging_by_one_then_none_skipped(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, *(credit_item(record_id) for record_id in ("x", "y", "z")))
    for record_id in ("x", "y", "z"):
        ama.alter(record_id, received_at="2026-11-20T10:00:00.000Z")

    entries, _ = all_holdings(ama_session, ama, page_size=1)

    assert [e["record_id"] for e in entries] == ["x", "y", "z"]


def test_given_since_when_listing_holdings_then_only_later_ones_exclusive(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    for record_id in ("a", "b", "c", "d"):
        results(ama_session, ama, credit_item(record_id))
    stamps = {"a": "2026-11-20T10:00:00.000Z", "b": "2026-11-20T11:00:00.000Z", "c": "2026-11-20T12:00:00.000Z"}
    for record_id, stamp in stamps.items():
        ama.alter(record_id, received_at=stamp)
    ama.alter("d", received_at="2026-11-20T13:00:00.000Z")

    entries, pages = all_holdings(ama_session, ama, since="2026-11-20T11:00:00.000Z", page_size=1)

    assert [e["record_id"] for e in entries] == ["c", "d"]
    assert pages == 2


def test_given_revocation_when_listing_since_before_it_then_revoked_holding_is_listed(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item())
    ama.alter("rec-1", received_at="2026-11-01T00:00:00.000Z")
    post_batch(ama_session, ama, "revocations", revocation(version=2))

    entries, _ = all_holdings(ama_session, ama, since="2026-11-02T00:00:00Z")

    assert [(e["record_id"], e["status"]) for e in entries] == [("rec-1", "REVOKED")]


def seed_holdings(registry: AmaPraRegistry, stamps: dict[str, str]) -> None:
    """Hold entries nobody delivered, received at the given times (tests of paging only read them back)."""
    for record_id, received_at in stamps.items():
        registry.put(
            {"record_id": record_id, "version": 1, "status": "AWARDED", "amount": "1.50", "received_at": received_at}
        )


def first_page_then_rest(
    session: requests.Session, registry: AmaPraRegistry, between: Callable[[], None], page_size: int = 2
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One page of holdings, then `between` (a change at the registry), then the rest from the first page's token."""
    response = session.get(f"{registry.url}/v1/holdings", params={"page_size": page_size}, timeout=5)
    assert response.status_code == 200, response.text
    first = response.json()
    between()
    rest, _ = all_holdings(session, registry, page_size=page_size, page_token=first["next_page_token"])
    return first["entries"], rest


SIX_STAMPS = {record_id: f"2026-11-20T10:0{n}:00.000Z" for n, record_id in enumerate("abcdef")}


def test_given_holdings_amended_between_page_requests_when_paging_on_then_next_page_serves_them_where_they_now_sort(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    seed_holdings(ama, SIX_STAMPS)

    def amend() -> None:
        ama.alter("a", received_at="2026-11-20T12:00:00.000Z")  # served already; changed since, so served again
        ama.alter("c", received_at="2026-11-20T11:00:00.000Z")
        ama.alter("d", amount="0.25")

    first, rest = first_page_then_rest(ama_session, ama, amend)

    assert [e["record_id"] for e in first] == ["a", "b"]
    assert [(e["record_id"], e["amount"]) for e in rest] == [
        ("d", "0.25"),
        ("e", "1.50"),
        ("f", "1.50"),
        ("c", "1.50"),
        ("a", "1.50"),
    ]


def test_given_holdings_added_between_page_requests_when_paging_on_then_those_after_the_position_are_served(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    seed_holdings(ama, SIX_STAMPS)
    added = {"bb": "2026-11-20T10:01:30.000Z", "early": "2026-11-20T09:00:00.000Z"}

    first, rest = first_page_then_rest(ama_session, ama, lambda: seed_holdings(ama, added))

    assert [e["record_id"] for e in first] == ["a", "b"]
    assert [e["record_id"] for e in rest] == ["bb", "c", "d", "e", "f"]


def test_given_holdings_deleted_between_page_requests_when_paging_on_then_they_are_not_served(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    seed_holdings(ama, SIX_STAMPS)

    def delete() -> None:
        ama.remove("a")
        ama.remove("c")
        ama.remove("f")

    first, rest = first_page_then_rest(ama_session, ama, delete)

    assert [e["record_id"] for e in first] == ["a", "b"]
    assert [e["record_id"] for e in rest] == ["d", "e"]


def test_given_twenty_thousand_holdings_when_paging_by_500_then_each_once_ordered_by_received_at_then_record_id(
    ama: AmaPraRegistry, ama_session: requests.Session
) -> None:
    rng = random.Random(20)
    record_ids = [f"rec-{n:05d}" for n in range(20_000)]
    rng.shuffle(record_ids)
    # 997 distinct times for 20,000 holdings: most pages end inside a run of equal received_at.
    seconds = {record_id: n % 997 for n, record_id in enumerate(record_ids)}
    stamps = {record_id: f"2026-11-20T10:{s // 60:02d}:{s % 60:02d}.000Z" for record_id, s in seconds.items()}
    seed_holdings(ama, stamps)

    entries, pages = all_holdings(ama_session, ama, page_size=500)

    assert pages == 40
    assert [e["record_id"] for e in entries] == sorted(stamps, key=lambda record_id: (stamps[record_id], record_id))


@pytest.mark.parametrize(
    "params", [{"page_size": "0"}, {"page_size": "501"}, {"page_size": "ten"}, {"since": "soon"}, {"page_token": "@@"}]
)
def test_given_bad_holdings_parameter_when_listing_then_400(
    ama: AmaPraRegistry, ama_session: requests.Session, params: dict[str, str]
) -> None:
    response = ama_session.get(f"{ama.url}/v1/holdings", params=params, timeout=5)

    assert response.status_code == 400


# -- tampering helpers -----------------------------------------------------------------------------------------


def test_given_removed_holding_when_same_item_resubmitted_then_accepted_again(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    [first] = results(ama_session, ama, credit_item())
    ama.remove("rec-1")

    entries, _ = all_holdings(ama_session, ama)
    [again] = results(ama_session, ama, credit_item())

    assert entries == []
    assert again["outcome"] == "accepted"
    assert again["receipt_id"] != first["receipt_id"]


def test_given_altered_holding_when_listing_then_altered_value_served(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item())

    ama.alter("rec-1", amount="0.25")
    entries, _ = all_holdings(ama_session, ama)

    assert entries[0]["amount"] == "0.25"


def test_given_holdings_copy_when_mutated_then_registry_unchanged(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    results(ama_session, ama, credit_item())

    ama.holdings()["rec-1"]["amount"] = "99.00"

    assert ama.holdings()["rec-1"]["amount"] == "1.50"


# -- faults and NPI check ----------------------------------------------------------------------------------------


def test_given_server_error_fault_when_posting_then_500_and_nothing_accepted(
    ama: AmaPraRegistry, ama_session: requests.Session, credit_item: ItemFactory
) -> None:
    ama.faults = Faults(server_error=1.0)

    response = post_credits(ama_session, ama, credit_item())

    assert response.status_code == 500
    assert ama.accepted == []


@pytest.mark.parametrize("npi, valid", [("1234567893", True), ("1234567890", False), ("123456789a", False)])
def test_given_npi_when_checking_digit_then_cms_luhn_rule_applies(npi: str, valid: bool) -> None:
    assert npi_is_valid(npi) is valid
