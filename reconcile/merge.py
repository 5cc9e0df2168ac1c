"""Merge: one CreditRecord per (learner, activity, credit type), versioned (DESIGN §4.4)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache

from reconcile.credit_rules import CreditDecision
from reconcile.names import uuid5
from reconcile.vocabulary import AWARDED, REVOKED

RECORD_NAMESPACE = uuid.UUID("0b7e4c0a-2d1f-4f7b-9a53-7c1e2b9f6d10")


@lru_cache(maxsize=1 << 18)  # every possible type of every decided pair, often again; ~40 MB at most
def record_id_for(learner_id: str, activity_id: str, credit_type: str) -> str:
    return uuid5(RECORD_NAMESPACE, f"{learner_id}|{activity_id}|{credit_type}")


@dataclass(frozen=True, slots=True)
class CreditState:
    record_id: str
    version: int
    status: str
    learner_id: str
    activity_id: str
    credit_type: str
    amount: Decimal
    completed_on: date
    evidence: tuple[str, ...]


def merge(
    current: CreditState | None, decision: CreditDecision | None, learner_id: str, activity_id: str, credit_type: str
) -> CreditState | None:
    """The next version of a record, or None when nothing a registry sees has changed.

    Only status, amount and completion date make a version: more evidence for the same outcome (the same
    statement twice, a second completion) leaves the record as it is.
    """
    if decision is None:
        if current is None or current.status == REVOKED:
            return None
        return CreditState(
            current.record_id,
            current.version + 1,
            REVOKED,
            learner_id,
            activity_id,
            credit_type,
            current.amount,
            current.completed_on,
            (),
        )
    if (
        current is not None
        and current.status == AWARDED
        and current.amount == decision.amount
        and current.completed_on == decision.completed_on
    ):
        return None
    return CreditState(
        record_id=current.record_id if current else record_id_for(learner_id, activity_id, credit_type),
        version=current.version + 1 if current else 1,
        status=AWARDED,
        learner_id=learner_id,
        activity_id=activity_id,
        credit_type=credit_type,
        amount=decision.amount,
        completed_on=decision.completed_on,
        evidence=decision.evidence,
    )
