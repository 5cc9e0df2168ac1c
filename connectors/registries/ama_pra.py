"""AMA PRA-style physician registry (ACCME PARS-like): AMA PRA credits of MD/DO learners by NPI or board id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from connectors.http import FatalAPIError, HttpClient, RetriableAPIError
from connectors.registries.base import (
    REGISTRY_REJECTED,
    REGISTRY_UNAVAILABLE,
    CreditRecord,
    Failure,
    Receipt,
    RegistryEntry,
    idempotency_key,
)

CREDIT_TYPES = frozenset({"AMA_PRA_1", "AMA_PRA_2"})


class AmaPraRegistry:
    def __init__(self, name: str, client: HttpClient, page_size: int = 200) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size

    def check(self) -> None:
        self.client.get_json("/v1/holdings", params={"page_size": 1})

    def accepts(self, record: CreditRecord) -> bool:
        learner = record["learner"]
        return record["credit_type"] in CREDIT_TYPES and bool(learner.get("npi") or learner.get("board_id"))

    @staticmethod
    def _item(record: CreditRecord) -> dict[str, Any]:
        learner = record["learner"]
        return {
            "idempotency_key": idempotency_key(record),
            "record_id": record["record_id"],
            "version": record["version"],
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

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        items = [self._item(r) for r in batch]
        batch_key = hashlib.sha256("\n".join(i["idempotency_key"] for i in items).encode()).hexdigest()
        try:
            body = self.client.post_json("/v1/credits", {"credits": items}, headers={"Idempotency-Key": batch_key})
        except RetriableAPIError as err:
            return [Failure(r["record_id"], r["version"], REGISTRY_UNAVAILABLE, str(err)) for r in batch]
        except FatalAPIError as err:
            return [Failure(r["record_id"], r["version"], REGISTRY_REJECTED, str(err)) for r in batch]
        by_key = {result["idempotency_key"]: result for result in body["results"]}
        outcomes: list[Receipt | Failure] = []
        for record in batch:
            result = by_key.get(idempotency_key(record))
            if result is None:
                outcomes.append(
                    Failure(record["record_id"], record["version"], REGISTRY_REJECTED, "no result returned")
                )
            elif result["outcome"] in ("accepted", "duplicate"):
                outcomes.append(Receipt(record["record_id"], record["version"], result["receipt_id"]))
            else:
                outcomes.append(
                    Failure(record["record_id"], record["version"], REGISTRY_REJECTED, str(result.get("error")))
                )
        return outcomes

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]:
        params: dict[str, Any] = {"page_size": self.page_size}
        if since is not None:
            params["since"] = since.isoformat()
        while True:
            body = self.client.get_json("/v1/holdings", params=params)
            for entry in body["entries"]:
                yield RegistryEntry(entry["record_id"], int(entry["version"]), entry["status"], entry)
            if not body.get("next_page_token"):
                return
            params["page_token"] = body["next_page_token"]
