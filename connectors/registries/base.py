"""The Registry protocol (DESIGN §6): which credits a registry takes, delivery, and what it holds.

Besides `deliver`, every registry can `redeliver` (deliver over whatever it holds for those records: the
nightly repair of altered or stale holdings) and `withdraw` holdings the ledger does not back, and has a
`check` that says clearly whether it is reachable and takes our credentials.

A connector subclasses `HttpRegistry`, which owns deliver/redeliver (one `_send` path with a `replace` flag),
`check`, holdings paging and the mapping of a failed call to its records' failures (`failed`/`failures`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Protocol, runtime_checkable

from connectors.http import FailureType, FatalAPIError, HttpClient, RetriableAPIError
from reconcile.vocabulary import AWARDED, REGISTRY_REJECTED, REGISTRY_UNAVAILABLE

CreditRecord = Mapping[str, Any]


@dataclass(frozen=True)
class Receipt:
    record_id: str
    version: int
    receipt_id: str


@dataclass(frozen=True)
class Failure:
    record_id: str
    version: int
    reason_code: str
    message: str


@dataclass(frozen=True)
class RegistryEntry:
    """One holding as the registry reports it, in our terms; `raw` keeps the registry's own fields (for
    `withdraw`, which may need the registry's key). `amount`/`completed_on` are None where a registry keeps none."""

    record_id: str
    version: int
    status: str
    raw: Mapping[str, Any] = field(repr=False)
    amount: Decimal | None = None
    completed_on: date | None = None

    @property
    def active(self) -> bool:
        return self.status == AWARDED

    def as_record(self) -> dict[str, Any]:
        """The record this holding stands for, as far as outcomes go (its id and version)."""
        return {"record_id": self.record_id, "version": self.version}


class RegistryCheckError(Exception):
    """The registry cannot be used as configured; the message says why (never a secret)."""


def idempotency_key(record: CreditRecord) -> str:
    return f"{record['record_id']}:{record['version']}"


Outcomes = dict[str, Receipt | Failure]


def reason_for(err: Exception) -> str:
    """A registry refusing the data (4xx) is REGISTRY_REJECTED; anything else (retries exhausted, credentials
    refused, wrong URL, an answer that cannot be read) means the registry could not take it now:
    REGISTRY_UNAVAILABLE, replayable as is."""
    if isinstance(err, FatalAPIError) and err.failure is FailureType.DATA:
        return REGISTRY_REJECTED
    return REGISTRY_UNAVAILABLE


def failures(records: Sequence[Mapping[str, Any]], err: Exception) -> list[Receipt | Failure]:
    """A failed call: one failure per record it carried, in order."""
    return [Failure(r["record_id"], r["version"], reason_for(err), str(err)) for r in records]


def failed(records: Sequence[Mapping[str, Any]], err: Exception) -> Outcomes:
    """`failures`, keyed by idempotency key (for sends that gather outcomes step by step)."""
    return {idempotency_key(r): f for r, f in zip(records, failures(records, err), strict=True)}


def rejected(record: CreditRecord, message: str) -> Failure:
    return Failure(record["record_id"], record["version"], REGISTRY_REJECTED, message)


class Registry(Protocol):
    name: str

    def check(self) -> None: ...

    def accepts(self, record: CreditRecord) -> bool: ...

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]: ...

    def redeliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]: ...

    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]: ...

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]: ...


class HttpRegistry(ABC):
    """Base of every HTTP registry. A connector declares where its holdings are (`holdings_path`, the list
    at `holdings_key` of each page) and implements `accepts`, `_send` and `withdraw`; a registry whose
    holdings or check are not that JSON read overrides `holdings` or `probe`."""

    holdings_path: ClassVar[str]
    holdings_key: ClassVar[str]

    def __init__(self, name: str, client: HttpClient, page_size: int = 200) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size

    @abstractmethod
    def accepts(self, record: CreditRecord) -> bool: ...

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=False)

    def redeliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=True)

    @abstractmethod
    def _send(self, batch: Sequence[CreditRecord], replace: bool) -> list[Receipt | Failure]:
        """The one send path: a redelivery (the nightly diff's repair, a replay) may replace what the registry
        holds (`replace`); a first delivery never does."""

    @abstractmethod
    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]: ...

    def check(self) -> None:
        """`probe`, with what can go wrong turned into one clear RegistryCheckError."""
        try:
            self.probe()
        except RetriableAPIError as err:
            where = "unreachable" if err.status is None else f"answered {err.status}"
            raise RegistryCheckError(f"registry {self.name}: {where} at {self.client.base_url} ({err})") from None
        except FatalAPIError as err:
            if err.status in (401, 403):
                raise RegistryCheckError(f"registry {self.name}: credentials refused ({err.status})") from None
            raise RegistryCheckError(f"registry {self.name}: {err}") from None

    def probe(self) -> object:
        """A cheap authenticated call: one holding."""
        return self.client.get_json(self.holdings_path, {"page_size": 1})

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]:
        """Holdings paged by `page_token` / `next_page_token`, changed since `since` when given."""
        params: dict[str, Any] = {"page_size": self.page_size}
        if since is not None:
            params["since"] = since.isoformat()
        while True:
            body = self.client.get_json(self.holdings_path, params=params)
            for held in body[self.holdings_key]:
                yield RegistryEntry(
                    held["record_id"],
                    int(held["version"]),
                    held["status"],
                    held,
                    Decimal(held["amount"]) if held.get("amount") else None,
                    date.fromisoformat(held["completed_on"]) if held.get("completed_on") else None,
                )
            if not body.get("next_page_token"):
                return
            params["page_token"] = body["next_page_token"]


@runtime_checkable
class DecidedLater(Protocol):
    """A registry that accepts a record provisionally and decides later (PARS: the board accepts or rejects
    within 24 hours). `rejections` asks about records sent within `decision_window` and names those rejected; it is
    asked at most once per `decision_poll_interval`."""

    name: str
    decision_window: timedelta
    decision_poll_interval: timedelta

    def rejections(self, sent: Sequence[tuple[str, int]]) -> list[Failure]: ...
