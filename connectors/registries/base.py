"""The Registry protocol (DESIGN §6): which credits a registry takes, delivery, and what it holds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

REGISTRY_REJECTED = "REGISTRY_REJECTED"
REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"

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
    record_id: str
    version: int
    status: str
    raw: Mapping[str, Any]


def idempotency_key(record: CreditRecord) -> str:
    return f"{record['record_id']}:{record['version']}"


class Registry(Protocol):
    name: str

    def accepts(self, record: CreditRecord) -> bool: ...

    def deliver(self, batch: Sequence[CreditRecord]) -> list[Receipt | Failure]: ...

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]: ...
