"""AMA PRA-style physician registry (ACCME PARS-like): AMA PRA credits of MD/DO learners by NPI or board id.

How a batch goes out (each step one batched call, each item idempotent on `<record_id>:<version>`):
1. activities not yet registered by this connector are registered (registering again is harmless);
2. records cannot be edited, so a later version of an award first deletes whatever older version is held
   (delete-then-add; when re-delivering for the nightly repair, the same version too);
3. revocations go to their own call; 4. awards are added.

Which activities are registered is remembered per process, but the registry is the judge: a registry restored
from an old backup, or restarted empty, answers "activity is not registered" for an activity we registered.
Those awards are not rejected on the spot: the activities are forgotten, registered again, and the awards sent
once more; only what is still refused then is a rejection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from connectors.http import APIError, HttpClient
from connectors.registries.base import (
    AWARDED,
    REVOKED,
    CreditRecord,
    Failure,
    Receipt,
    RegistryEntry,
    check_call,
    failures,
    idempotency_key,
    paged_holdings,
    rejected,
)

Outcomes = dict[str, Receipt | Failure]

# What the registry says when a credit names an activity it does not know (PARS: "activity not found").
UNREGISTERED_ACTIVITY = "activity is not registered"


def _batch_key(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


class AmaPraRegistry:
    credit_types = frozenset({"AMA_PRA_1", "AMA_PRA_2"})
    holdings_path = "/v1/holdings"

    def __init__(self, name: str, client: HttpClient, page_size: int = 200) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size
        self._registered: set[str] = set()

    def check(self) -> None:
        check_call(self.name, self.client.base_url, lambda: self.client.get_json(self.holdings_path, {"page_size": 1}))

    def accepts(self, record: CreditRecord) -> bool:
        learner = record["learner"]
        return record["credit_type"] in self.credit_types and bool(learner.get("npi") or learner.get("board_id"))

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=False)

    def redeliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=True)

    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]:
        deletions = [_deletion(e.record_id, e.version + 1) for e in entries]
        records = [{"record_id": e.record_id, "version": e.version} for e in entries]
        outcomes = self._delete(records, deletions)
        return [outcomes.get(idempotency_key(r)) or Receipt(r["record_id"], r["version"], "deleted") for r in records]

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]:
        return paged_holdings(self.client, self.holdings_path, "entries", self.page_size, since)

    # -- the steps of one batch ----------------------------------------------------------------------------

    def _send(self, batch: Sequence[CreditRecord], replace: bool) -> list[Receipt | Failure]:
        outcomes = self._register_activities([r for r in batch if r["status"] == AWARDED])
        pending = [r for r in batch if idempotency_key(r) not in outcomes]
        # With `replace`, the version held may be this very one (altered in place), so it goes as well.
        clear = [r for r in pending if replace or (r["status"] == AWARDED and r["version"] > 1)]
        below = 1 if replace else 0
        outcomes |= self._delete(clear, [_deletion(r["record_id"], r["version"] + below) for r in clear])
        pending = [r for r in pending if idempotency_key(r) not in outcomes]
        revocations = [r for r in pending if r["status"] == REVOKED]
        awards = [r for r in pending if r["status"] == AWARDED]
        outcomes |= self._post("/v1/revocations", "revocations", revocations, _revocation)
        outcomes |= self._post("/v1/credits", "credits", awards, _award)
        forgotten = [r for r in awards if _unregistered(outcomes[idempotency_key(r)])]
        if forgotten:
            self._registered -= {r["activity_id"] for r in forgotten}
            again = self._register_activities(forgotten)
            outcomes |= again
            resend = [r for r in forgotten if idempotency_key(r) not in again]
            # Another batch key: a registry that replays answers by Idempotency-Key must not replay the refusal.
            outcomes |= self._post("/v1/credits", "credits", resend, _award, batch_salt="re-registered")
        return [outcomes[idempotency_key(r)] for r in batch]

    def _register_activities(self, awards: Sequence[CreditRecord]) -> Outcomes:
        titles = {r["activity_id"]: r["activity_title"] for r in awards if r["activity_id"] not in self._registered}
        if not titles:
            return {}
        body = [{"activity_id": activity_id, "title": title} for activity_id, title in titles.items()]
        waiting = [r for r in awards if r["activity_id"] in titles]
        try:
            results = self.client.post_json("/v1/activities", {"activities": body})["results"]
        except APIError as err:
            return {idempotency_key(r): f for r, f in zip(waiting, failures(waiting, err), strict=True)}
        errors: dict[str, str] = {}
        for result in results:
            if result["outcome"] in ("registered", "already_registered"):
                self._registered.add(result["activity_id"])
            else:
                errors[result["activity_id"]] = f"activity registration: {result.get('error')}"
        return {
            idempotency_key(r): rejected(r, errors.get(r["activity_id"], "activity registration: no result returned"))
            for r in waiting
            if r["activity_id"] not in self._registered
        }

    def _delete(self, records: Sequence[CreditRecord], deletions: list[dict[str, Any]]) -> Outcomes:
        """Failures only: a record whose held versions could not be deleted must not be added again."""
        if not deletions:
            return {}
        keys = [f"{d['record_id']}:below:{d['versions_below']}" for d in deletions]
        try:
            results = self.client.post_json(
                "/v1/deletions", {"deletions": deletions}, headers={"Idempotency-Key": _batch_key(keys)}
            )["results"]
        except APIError as err:
            return {idempotency_key(r): f for r, f in zip(records, failures(records, err), strict=True)}
        outcomes: Outcomes = {}
        for record, result in zip(records, results, strict=True):
            if result["outcome"] == "rejected":
                outcomes[idempotency_key(record)] = rejected(record, f"deletion: {result.get('error')}")
        return outcomes

    def _post(
        self,
        path: str,
        field: str,
        records: Sequence[CreditRecord],
        item: Callable[[CreditRecord], dict[str, Any]],
        batch_salt: str = "",
    ) -> Outcomes:
        if not records:
            return {}
        keys = [idempotency_key(r) for r in records]
        batch_key = _batch_key([*keys, batch_salt] if batch_salt else keys)
        try:
            body = self.client.post_json(
                path, {field: [item(r) for r in records]}, headers={"Idempotency-Key": batch_key}
            )
        except APIError as err:
            return dict(zip(keys, failures(records, err), strict=True))
        by_key = {result["idempotency_key"]: result for result in body["results"]}
        outcomes: Outcomes = {}
        for key, record in zip(keys, records, strict=True):
            result = by_key.get(key)
            if result is None:
                outcomes[key] = rejected(record, "no result returned")
            elif result["outcome"] in ("accepted", "duplicate"):
                outcomes[key] = Receipt(record["record_id"], record["version"], result["receipt_id"])
            else:
                outcomes[key] = rejected(record, str(result.get("error")))
        return outcomes


def _unregistered(outcome: Receipt | Failure) -> bool:
    return isinstance(outcome, Failure) and UNREGISTERED_ACTIVITY in outcome.message


def _deletion(record_id: str, versions_below: int) -> dict[str, Any]:
    return {"record_id": record_id, "versions_below": versions_below}


def _revocation(record: CreditRecord) -> dict[str, Any]:
    return {"idempotency_key": idempotency_key(record), "record_id": record["record_id"], "version": record["version"]}


def _award(record: CreditRecord) -> dict[str, Any]:
    learner = record["learner"]
    return {
        **_revocation(record),
        "status": record["status"],
        "npi": learner.get("npi"),
        "board_id": learner.get("board_id"),
        "first_name": learner.get("given_name"),
        "last_name": learner.get("family_name"),
        "dob_month_day": learner.get("dob_month_day"),
        "activity_id": record["activity_id"],
        "activity_title": record["activity_title"],
        "credit_type": record["credit_type"],
        "amount": f"{record['amount']:.2f}",
        "completed_on": record["completed_on"].isoformat(),
    }
