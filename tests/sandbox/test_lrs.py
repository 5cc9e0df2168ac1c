"""The sandbox xAPI LRS over real HTTP: auth, version header, paging on stored time, voiding, POST, faults."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from deploy.sandbox.base import Faults
from deploy.sandbox.lrs import XapiLrs

VOIDED_ID = "1457118c-270f-56d4-a87a-37dc08a0954d"
VOIDING_ID = "973b8974-5cbb-54fb-970c-da4cf4c7908b"
MALFORMED_ID = "db8ed5e2-8ca8-566d-a8ca-af2130f8713a"
SHARED_STORED_IDS = ("3cf6279d-e71b-58a4-a3f6-fb2fecb520e3", "c1aba778-d758-5d02-a676-b6548e5fef6f")
STORED_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def pull_all(session: requests.Session, lrs: XapiLrs, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Query, then follow `more` links to the end; returns the statements and the number of pages."""
    response = session.get(f"{lrs.url}/xapi/statements", params=params, timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    rest, pages = follow_more(session, lrs, body["more"])
    return body["statements"] + rest, pages + 1


def follow_more(session: requests.Session, lrs: XapiLrs, more: str) -> tuple[list[dict[str, Any]], int]:
    statements: list[dict[str, Any]] = []
    pages = 0
    while more:
        response = session.get(urljoin(lrs.url, more), timeout=5)
        assert response.status_code == 200, response.text
        body = response.json()
        statements += body["statements"]
        more = body["more"]
        pages += 1
    return statements, pages


def completed(verb_suffix: str = "completed", **fields: Any) -> dict[str, Any]:
    return {
        "actor": {"objectType": "Agent", "mbox": "mailto:someone@example.org"},
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb_suffix}"},
        "object": {"objectType": "Activity", "id": "https://lms.example.org/activities/ACT-001"},
        **fields,
    }


# -- auth and version header ---------------------------------------------------------------------------------


def test_given_no_credentials_when_getting_statements_then_401_with_basic_challenge(sample_lrs: XapiLrs) -> None:
    response = requests.get(
        f"{sample_lrs.url}/xapi/statements", headers={"X-Experience-API-Version": "1.0.3"}, timeout=5
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_given_wrong_password_when_getting_statements_then_401(sample_lrs: XapiLrs) -> None:
    response = requests.get(
        f"{sample_lrs.url}/xapi/statements",
        auth=("lrs-demo", "wrong"),
        headers={"X-Experience-API-Version": "1.0.3"},
        timeout=5,
    )

    assert response.status_code == 401


@pytest.mark.parametrize("headers", [{}, {"X-Experience-API-Version": "0.95"}, {"X-Experience-API-Version": ""}])
def test_given_missing_or_old_version_header_when_getting_statements_then_400(
    sample_lrs: XapiLrs, headers: dict[str, str]
) -> None:
    response = requests.get(
        f"{sample_lrs.url}/xapi/statements", auth=("lrs-demo", "lrs-demo-secret"), headers=headers, timeout=5
    )

    assert response.status_code == 400
    assert "X-Experience-API-Version" in response.json()["error"]


def test_given_no_version_header_when_posting_then_400_and_nothing_stored(
    empty_lrs: XapiLrs,
) -> None:
    response = requests.post(
        f"{empty_lrs.url}/xapi/statements", auth=("lrs-demo", "lrs-demo-secret"), json=completed(), timeout=5
    )

    assert response.status_code == 400
    assert empty_lrs.statement_count() == 0


def test_given_valid_request_when_getting_statements_then_response_carries_xapi_version(
    sample_lrs: XapiLrs, xapi: requests.Session
) -> None:
    response = xapi.get(f"{sample_lrs.url}/xapi/statements", params={"limit": 1}, timeout=5)

    assert response.status_code == 200
    assert response.headers["X-Experience-API-Version"] == "1.0.3"


# -- paging ----------------------------------------------------------------------------------------------------


def test_given_sample_when_paging_ascending_with_small_limit_then_every_visible_statement_once_in_stored_order(
    sample_lrs: XapiLrs, xapi: requests.Session, sample_statements: list[dict[str, Any]]
) -> None:
    statements, pages = pull_all(xapi, sample_lrs, ascending="true", limit=4)

    ids = [s["id"] for s in statements]
    expected = [s["id"] for s in sample_statements if s["id"] != VOIDED_ID]
    assert ids == expected  # the sample file is in stored order already
    assert len(ids) == len(set(ids)) == 35
    assert pages == 9
    assert [s["stored"] for s in statements] == sorted(s["stored"] for s in statements)


def test_given_sample_when_paging_without_ascending_then_newest_first_and_every_statement_once(
    sample_lrs: XapiLrs, xapi: requests.Session, sample_statements: list[dict[str, Any]]
) -> None:
    statements, _ = pull_all(xapi, sample_lrs, limit=7)

    expected = [s["id"] for s in sample_statements if s["id"] != VOIDED_ID]
    assert [s["id"] for s in statements] == expected[::-1]


def test_given_page_boundary_inside_a_shared_stored_instant_when_following_more_then_neither_is_skipped(
    sample_lrs: XapiLrs, xapi: requests.Session, sample_statements: list[dict[str, Any]]
) -> None:
    before_shared = next(s for s in sample_statements if s["id"] == SHARED_STORED_IDS[0])
    index = sample_statements.index(before_shared)
    since = sample_statements[index - 1]["stored"]

    first = xapi.get(
        f"{sample_lrs.url}/xapi/statements", params={"since": since, "limit": 1, "ascending": "true"}, timeout=5
    ).json()
    second = xapi.get(urljoin(sample_lrs.url, first["more"]), timeout=5).json()

    assert [s["id"] for s in first["statements"] + second["statements"]] == list(SHARED_STORED_IDS)


def test_given_since_and_until_when_querying_then_since_is_exclusive_and_until_inclusive_on_stored(
    sample_lrs: XapiLrs, xapi: requests.Session, sample_statements: list[dict[str, Any]]
) -> None:
    shared_stored = next(s["stored"] for s in sample_statements if s["id"] == SHARED_STORED_IDS[0])

    up_to, _ = pull_all(xapi, sample_lrs, until=shared_stored, ascending="true")
    after, _ = pull_all(xapi, sample_lrs, since=shared_stored, ascending="true")

    assert [s["id"] for s in up_to][-2:] == list(SHARED_STORED_IDS)
    assert all(s["stored"] > shared_stored for s in after)
    assert len(up_to) + len(after) == 35


def test_given_since_cursor_when_pulling_then_filter_uses_stored_not_timestamp(
    sample_lrs: XapiLrs, xapi: requests.Session, sample_statements: list[dict[str, Any]]
) -> None:
    last = sample_statements[-1]
    between = last["timestamp"]  # earlier than its stored, later than the previous statement's stored

    statements, _ = pull_all(xapi, sample_lrs, since=between)

    assert [s["id"] for s in statements] == [last["id"]]


def test_given_limit_above_maximum_when_querying_then_at_most_500_and_more_link(
    empty_lrs: XapiLrs, xapi: requests.Session
) -> None:
    empty_lrs.add([completed() for _ in range(501)])

    body = xapi.get(f"{empty_lrs.url}/xapi/statements", params={"limit": 1000}, timeout=5).json()

    assert len(body["statements"]) == 500
    assert body["more"].startswith("/xapi/statements/more/")


def test_given_last_page_when_querying_then_more_is_empty_string(sample_lrs: XapiLrs, xapi: requests.Session) -> None:
    body = xapi.get(f"{sample_lrs.url}/xapi/statements", params={"limit": 500}, timeout=5).json()

    assert len(body["statements"]) == 35
    assert body["more"] == ""


def test_given_statement_stored_during_ascending_paging_when_following_more_then_it_arrives_once_at_the_end(
    sample_lrs: XapiLrs, xapi: requests.Session
) -> None:
    first = xapi.get(f"{sample_lrs.url}/xapi/statements", params={"limit": 10, "ascending": "true"}, timeout=5).json()
    [new_id] = sample_lrs.add(completed())
    rest, _ = follow_more(xapi, sample_lrs, first["more"])

    ids = [s["id"] for s in first["statements"] + rest]
    assert ids[-1] == new_id
    assert len(ids) == len(set(ids)) == 36


@pytest.mark.parametrize(
    "params",
    [{"limit": "ten"}, {"limit": "-1"}, {"since": "yesterday"}, {"ascending": "yes"}, {"agent": "{}"}],
)
def test_given_bad_query_parameter_when_querying_then_400(
    sample_lrs: XapiLrs, xapi: requests.Session, params: dict[str, str]
) -> None:
    response = xapi.get(f"{sample_lrs.url}/xapi/statements", params=params, timeout=5)

    assert response.status_code == 400


def test_given_made_up_more_token_when_following_it_then_400(sample_lrs: XapiLrs, xapi: requests.Session) -> None:
    response = xapi.get(f"{sample_lrs.url}/xapi/statements/more/bm90LWEtdG9rZW4", timeout=5)

    assert response.status_code == 400


# -- voiding and as-is serving ---------------------------------------------------------------------------------


def test_given_voided_statement_when_pulling_everything_then_it_is_hidden_and_the_voiding_one_returned(
    sample_lrs: XapiLrs, xapi: requests.Session
) -> None:
    statements, _ = pull_all(xapi, sample_lrs, ascending="true")

    by_id = {s["id"]: s for s in statements}
    assert VOIDED_ID not in by_id
    assert by_id[VOIDING_ID]["object"] == {"objectType": "StatementRef", "id": VOIDED_ID}


def test_given_voiding_statement_posted_later_when_pulling_then_target_disappears(
    empty_lrs: XapiLrs, xapi: requests.Session
) -> None:
    [target] = empty_lrs.add(completed())
    voiding = completed("voided", object={"objectType": "StatementRef", "id": target})

    response = xapi.post(f"{empty_lrs.url}/xapi/statements", json=voiding, timeout=5)
    statements, _ = pull_all(xapi, empty_lrs)

    assert response.status_code == 200
    assert [s["id"] for s in statements] == response.json()


def test_given_malformed_statement_in_file_when_pulling_then_served_exactly_as_written(
    sample_lrs: XapiLrs, xapi: requests.Session, sample_statements: list[dict[str, Any]]
) -> None:
    statements, _ = pull_all(xapi, sample_lrs)

    served = next(s for s in statements if s["id"] == MALFORMED_ID)
    assert "actor" not in served
    assert served == next(s for s in sample_statements if s["id"] == MALFORMED_ID)


# -- POST and add ----------------------------------------------------------------------------------------------


def test_given_statements_without_id_or_stored_when_posting_then_lrs_assigns_both(
    empty_lrs: XapiLrs, xapi: requests.Session
) -> None:
    response = xapi.post(f"{empty_lrs.url}/xapi/statements", json=[completed(), completed()], timeout=5)
    statements, _ = pull_all(xapi, empty_lrs, ascending="true")

    assert response.status_code == 200
    ids = response.json()
    assert [s["id"] for s in statements] == ids
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert all(STORED_FORMAT.fullmatch(s["stored"]) for s in statements)


def test_given_statement_with_id_when_posted_twice_identically_then_stored_once(
    empty_lrs: XapiLrs, xapi: requests.Session
) -> None:
    statement = completed(id=str(uuid.uuid4()))

    first = xapi.post(f"{empty_lrs.url}/xapi/statements", json=statement, timeout=5)
    second = xapi.post(f"{empty_lrs.url}/xapi/statements", json=statement, timeout=5)

    assert first.json() == second.json() == [statement["id"]]
    assert empty_lrs.statement_count() == 1


def test_given_existing_id_when_posting_different_content_then_409_and_nothing_stored(
    empty_lrs: XapiLrs, xapi: requests.Session
) -> None:
    statement_id = str(uuid.uuid4())
    empty_lrs.add(completed(id=statement_id))

    response = xapi.post(
        f"{empty_lrs.url}/xapi/statements", json=[completed(), completed("passed", id=statement_id)], timeout=5
    )

    assert response.status_code == 409
    assert empty_lrs.statement_count() == 1


@pytest.mark.parametrize("body", ["not json", "[]", "[1, 2]", '"a string"'])
def test_given_body_that_is_not_statements_when_posting_then_400(
    empty_lrs: XapiLrs, xapi: requests.Session, body: str
) -> None:
    response = xapi.post(
        f"{empty_lrs.url}/xapi/statements", data=body, headers={"Content-Type": "application/json"}, timeout=5
    )

    assert response.status_code == 400


def test_given_add_helper_when_statement_has_id_and_stored_then_kept_unchanged(
    empty_lrs: XapiLrs, xapi: requests.Session
) -> None:
    statement = completed(id=str(uuid.uuid4()), stored="2026-11-18T10:00:00.000Z")

    assert empty_lrs.add(statement) == [statement["id"]]
    assert xapi.get(f"{empty_lrs.url}/xapi/statements", timeout=5).json()["statements"] == [statement]


# -- faults ----------------------------------------------------------------------------------------------------


def test_given_server_error_fault_when_querying_then_500(sample_lrs: XapiLrs, xapi: requests.Session) -> None:
    sample_lrs.faults = Faults(server_error=1.0)

    response = xapi.get(f"{sample_lrs.url}/xapi/statements", timeout=5)

    assert response.status_code == 500


def test_given_rate_limit_fault_when_querying_then_429_with_retry_after(
    sample_lrs: XapiLrs, xapi: requests.Session
) -> None:
    sample_lrs.faults = Faults(rate_limited=1.0, retry_after_s=2)

    response = xapi.get(f"{sample_lrs.url}/xapi/statements", timeout=5)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


def test_given_dropped_connection_fault_when_querying_then_client_sees_connection_error(
    sample_lrs: XapiLrs, xapi: requests.Session
) -> None:
    sample_lrs.faults = Faults(dropped=1.0)

    with pytest.raises(requests.ConnectionError):
        xapi.get(f"{sample_lrs.url}/xapi/statements", timeout=5)
