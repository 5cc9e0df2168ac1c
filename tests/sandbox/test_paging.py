"""Keyset paging shared by the registry sandboxes: the generation-counting holding store, the pager's cached
order (kept while the store is unchanged, rebuilt when it changes) and, over real HTTP, a board's withdrawal
between two page requests."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from deploy.sandbox.base import Request, format_instant
from deploy.sandbox.cebroker import CeBroker
from deploy.sandbox.paging import Entry, HoldingStore, KeysetPager, OrderKey

START = datetime(2026, 11, 20, 10, tzinfo=UTC)


def stamp(minutes: float) -> str:
    return format_instant(START + timedelta(minutes=minutes))


def request(**params: Any) -> Request:
    return Request("GET", "/v1/holdings", {k: str(v) for k, v in params.items()}, {}, b"", re.match("", ""))


def holding(record_id: str, minutes: float) -> Entry:
    return {"record_id": record_id, "received_at": stamp(minutes), "amount": "1.50"}


def store_of(*entries: Entry) -> HoldingStore:
    return HoldingStore({entry["record_id"]: entry for entry in entries})


class CountingPager(KeysetPager):
    """Counts the entries put in order, so a test can see the order being rebuilt, or not."""

    def __init__(self) -> None:
        super().__init__("received_at", "record_id")
        self.ordered = 0

    def order(self, entry: Entry) -> OrderKey:
        self.ordered += 1
        return super().order(entry)


def page_through(pager: KeysetPager, store: HoldingStore, **params: Any) -> tuple[list[Entry], int]:
    entries: list[Entry] = []
    pages = 0
    while True:
        page, token = pager.page(store, request(**params))
        entries += page
        pages += 1
        if token is None:
            return entries, pages
        params = {**params, "page_token": token}


# -- the store -------------------------------------------------------------------------------------------------


def test_given_store_when_entries_are_set_deleted_popped_updated_or_amended_then_each_bumps_the_generation() -> None:
    store = store_of(holding("a", 0), holding("b", 1))
    before = store.generation

    store["c"] = holding("c", 2)
    del store["a"]
    store.pop("b")
    store.update({"d": holding("d", 3)})
    store.setdefault("e", holding("e", 4))
    store.amend("c", {"amount": "0.25"})

    assert store.generation == before + 6
    assert sorted(store) == ["c", "d", "e"]


def test_given_store_when_only_read_then_the_generation_stays() -> None:
    store = store_of(holding("a", 0))
    before = store.generation

    _ = (store["a"], store.get("zz"), "a" in store, len(store), list(store.items()), list(store.values()))
    store.pop("missing", None)

    assert store.generation == before


def test_given_held_entry_when_amended_then_it_is_replaced_and_the_old_dict_is_left_alone() -> None:
    old = holding("a", 0)
    store = store_of(old)

    new = store.amend("a", {"amount": "0.25"})

    assert store["a"] is new
    assert new == old | {"amount": "0.25"}
    assert old["amount"] == "1.50"


def test_given_unknown_key_when_amended_then_key_error_and_nothing_counted() -> None:
    store = store_of(holding("a", 0))
    before = store.generation

    with pytest.raises(KeyError):
        store.amend("zz", {"amount": "0.25"})

    assert store.generation == before


# -- the pager's cached order ------------------------------------------------------------------------------------


def test_given_unchanged_store_when_paging_through_then_the_order_is_built_once() -> None:
    store = store_of(*(holding(f"r{n:03d}", n % 7) for n in range(100)))
    pager = CountingPager()

    entries, pages = page_through(pager, store, page_size=10)

    assert pages == 10
    assert len(entries) == 100
    assert pager.ordered == 100


def test_given_store_changed_between_pages_when_paging_on_then_the_order_is_rebuilt_and_the_change_served() -> None:
    store = store_of(*(holding(f"r{n}", n) for n in range(6)))
    pager = CountingPager()
    first, token = pager.page(store, request(page_size=3))

    store.amend("r1", {"received_at": stamp(60)})
    store["r9"] = holding("r9", 4.5)
    del store["r5"]
    rest, _ = page_through(pager, store, page_size=3, page_token=token)

    assert [e["record_id"] for e in first] == ["r0", "r1", "r2"]
    assert [e["record_id"] for e in rest] == ["r3", "r4", "r9", "r1"]
    assert pager.ordered == 6 + 6


def test_given_two_stores_when_one_pager_pages_each_then_neither_is_served_the_others_order() -> None:
    one, other = store_of(holding("a", 0)), store_of(holding("b", 0))
    pager = KeysetPager("received_at", "record_id")

    assert [e["record_id"] for e in pager.page(one, request())[0]] == ["a"]
    assert one.generation == other.generation
    assert [e["record_id"] for e in pager.page(other, request())[0]] == ["b"]


def test_given_page_when_its_entries_are_mutated_then_the_store_is_unchanged() -> None:
    store = store_of(holding("a", 0))
    pager = KeysetPager("received_at", "record_id")

    pager.page(store, request())[0][0]["amount"] = "99.00"

    assert store["a"]["amount"] == "1.50"


@pytest.mark.parametrize("seed", range(20))
def test_given_random_stamps_with_ties_when_paging_with_or_without_since_then_every_later_entry_once_in_order(
    seed: int,
) -> None:
    rng = random.Random(seed)
    store = store_of(*(holding(f"r{n}", rng.randrange(30)) for n in range(rng.randrange(0, 120))))
    size = rng.randrange(1, 12)
    since = rng.choice([None, rng.randrange(-1, 31)])
    params: dict[str, Any] = {"page_size": size} | ({} if since is None else {"since": stamp(since)})

    entries, pages = page_through(KeysetPager("received_at", "record_id"), store, **params)

    expected = sorted(
        (e for e in store.values() if since is None or e["received_at"] > stamp(since)),
        key=lambda e: (e["received_at"], e["record_id"]),
    )
    assert entries == expected
    assert pages == max(1, -(-len(expected) // size))


# -- over HTTP: a withdrawal between two page requests ---------------------------------------------------------------


@pytest.fixture
def cebroker() -> Iterator[CeBroker]:
    with CeBroker() as registry:
        yield registry


def cebroker_row(ref: str) -> dict[str, Any]:
    return {
        "external_ref": ref,
        "first_name": "Test",
        "last_name": "Nurse",
        "hours": "1.50",
        "date_completed": "11/17/2026",
        "license": f"RN{ref}",
        "cebroker_state": "FL",
        "licensee_profession": "RN",
        "id_course": "20-000001",
        "cd_subject_area": "GENERAL",
    }


def post(session: requests.Session, url: str, root: ET.Element) -> ET.Element:
    response = session.post(url, data=ET.tostring(root), timeout=5)
    response.raise_for_status()
    return ET.fromstring(response.content)


def test_given_row_withdrawn_between_page_requests_when_paging_on_then_it_is_listed_again_at_the_end_withdrawn(
    cebroker: CeBroker,
) -> None:
    ids = {ref: cebroker.put(cebroker_row(ref)) for ref in ("1001", "1002", "1003", "1004")}
    for minutes, row_id in enumerate(ids.values()):
        cebroker.alter(row_id, changed_at=stamp(minutes))
    credentials = {"id_parent_provider": cebroker.provider_id, "upload_key": cebroker.upload_key}

    def page(cursor: str) -> ET.Element:
        return post(
            session,
            f"{cebroker.url}/ws/roster-query",
            ET.Element("roster_query", credentials, limit="2", cursor=cursor),
        )

    with requests.Session() as session:
        first = page("")
        deletion = ET.Element("roster_deletions", credentials)
        ET.SubElement(deletion, "attendee", cebroker_row("1001"))
        deleted = post(session, f"{cebroker.url}/ws/roster-deletions", deletion)
        rest: list[dict[str, str]] = []
        cursor = first.get("next_cursor", "")
        while cursor:
            body = page(cursor)
            rest += [dict(node.attrib) for node in body.iter("attendee")]
            cursor = body.get("next_cursor", "")

    assert [node.get("Message") for node in deleted.iter("attendee")] == [""]
    assert [node.get("external_ref") for node in first.iter("attendee")] == ["1001", "1002"]
    assert [(r["external_ref"], r["status"]) for r in rest] == [
        ("1003", "ACTIVE"),
        ("1004", "ACTIVE"),
        ("1001", "DELETED"),
    ]
