"""The Registry protocol (DESIGN §6): which credits a registry takes, delivery, and what it holds.

Besides `deliver`, every registry can `redeliver` (deliver over whatever it holds for those records: the
nightly repair of altered or stale holdings) and `withdraw` holdings the ledger does not back, and has a
`check` that says clearly whether it is reachable and takes our credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from connectors.http import APIError, FailureType, FatalAPIError, RetriableAPIError
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


class RegistryCheckError(Exception):
    """The registry cannot be used as configured; the message says why (never a secret)."""


def idempotency_key(record: CreditRecord) -> str:
    return f"{record['record_id']}:{record['version']}"


def reason_for(err: APIError) -> str:
    """A registry refusing the data (4xx) is REGISTRY_REJECTED; anything else (retries exhausted, credentials
    refused, wrong URL) means the registry could not take it now: REGISTRY_UNAVAILABLE, replayable as is."""
    if isinstance(err, FatalAPIError) and err.failure is FailureType.DATA:
        return REGISTRY_REJECTED
    return REGISTRY_UNAVAILABLE


def failures(records: Sequence[CreditRecord], err: APIError) -> list[Receipt | Failure]:
    return [Failure(r["record_id"], r["version"], reason_for(err), str(err)) for r in records]


def rejected(record: CreditRecord, message: str) -> Failure:
    return Failure(record["record_id"], record["version"], REGISTRY_REJECTED, message)


def check_call(registry_name: str, base_url: str, call: Callable[[], object]) -> None:
    """Run a cheap authenticated call and turn what can go wrong into one clear RegistryCheckError."""
    try:
        call()
    except RetriableAPIError as err:
        where = "unreachable" if err.status is None else f"answered {err.status}"
        raise RegistryCheckError(f"registry {registry_name}: {where} at {base_url} ({err})") from None
    except FatalAPIError as err:
        if err.status in (401, 403):
            raise RegistryCheckError(f"registry {registry_name}: credentials refused ({err.status})") from None
        raise RegistryCheckError(f"registry {registry_name}: {err}") from None


class Registry(Protocol):
    name: str

    def check(self) -> None: ...

    def accepts(self, record: CreditRecord) -> bool: ...

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]: ...

    def redeliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]: ...

    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]: ...

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]: ...


class SendsBatches:
    """`deliver` and `redeliver` of a registry whose one send path takes a `replace` flag: a redelivery (the
    nightly diff's repair, a replay) may replace what the registry holds; a first delivery never does."""

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=False)

    def redeliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]:
        return self._send(batch, replace=True)

    def _send(self, batch: Sequence[CreditRecord], replace: bool) -> list[Receipt | Failure]:
        raise NotImplementedError


@runtime_checkable
class DecidedLater(Protocol):
    """A registry that accepts a record provisionally and decides later (PARS: the board accepts or rejects
    within 24 hours). `rejections` asks about records sent within `decision_window` and names those rejected; it is
    asked at most once per `decision_poll_interval`."""

    name: str
    decision_window: timedelta
    decision_poll_interval: timedelta

    def rejections(self, sent: Sequence[tuple[str, int]]) -> list[Failure]: ...


def paged_holdings(
    client: Any, path: str, items_key: str, page_size: int, since: datetime | None
) -> Iterator[RegistryEntry]:
    """Holdings of a registry that pages by `page_token` / `next_page_token` and filters by `since`."""
    params: dict[str, Any] = {"page_size": page_size}
    if since is not None:
        params["since"] = since.isoformat()
    while True:
        body = client.get_json(path, params=params)
        for held in body[items_key]:
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
