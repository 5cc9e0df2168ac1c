"""Credit rules: from a learner's evidence for one activity to a credit amount per credit type.

Source of the figures: ../shared/domain/credit-rules.md. Only AMA PRA Category 1 exists so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from reconcile.catalog import Activity

AMA_PRA_1 = "AMA_PRA_1"
QUARTER = Decimal("0.25")
PHYSICIANS = frozenset({"MD", "DO"})
ELIGIBLE_PROFESSIONS: Mapping[str, frozenset[str]] = {AMA_PRA_1: PHYSICIANS}
ACCREDITOR_OF: Mapping[str, str] = {AMA_PRA_1: "ACCME"}
COMPLETION_KINDS = frozenset({"COMPLETED"})


@dataclass(frozen=True)
class CreditDecision:
    credit_type: str
    amount: Decimal
    completed_on: date
    evidence: tuple[str, ...]


def event_key(event: Mapping[str, Any]) -> str:
    return f"{event['source']}:{event['event_id']}"


def _day(moment: datetime) -> date:
    return moment.date()


def participation_minutes(events: Iterable[Mapping[str, Any]]) -> float:
    """Union of join/leave segments (overlaps count once); events with only `minutes` count by the largest.

    Taking the largest bare `minutes` rather than their sum is our choice: duplicate attendance reports
    of one session must not add up.
    """
    segments = sorted((e["started_at"], e["ended_at"]) for e in events if e.get("started_at") and e.get("ended_at"))
    total = 0.0
    current_start: datetime | None = None
    current_end: datetime | None = None
    for start, end in segments:
        if current_end is None or start > current_end:
            if current_start is not None and current_end is not None:
                total += (current_end - current_start).total_seconds() / 60
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_start is not None and current_end is not None:
        total += (current_end - current_start).total_seconds() / 60
    bare = [float(e["minutes"]) for e in events if e.get("minutes") and not e.get("started_at")]
    return max([total, *bare])


def round_nearest_quarter(hours: Decimal) -> Decimal:
    return (hours / QUARTER).quantize(Decimal(1), rounding=ROUND_HALF_UP) * QUARTER


def _claimed(events: Iterable[Mapping[str, Any]], credit_type: str) -> Decimal | None:
    claims = [
        Decimal(str(c["amount"])) for e in events for c in e.get("claimed") or () if c["credit_type"] == credit_type
    ]
    return min(claims) if claims else None


def ama_pra_1(activity: Activity, events: list[Mapping[str, Any]]) -> CreditDecision | None:
    """AMA PRA Category 1 (AMA PRA booklet): a completion of an enduring activity earns the designated
    amount; participation in a live activity earns 60 min = 1.00 rounded to the nearest 0.25, capped at the
    designation; participation below 0.25 h (15 min) earns none - we read "below 0.25" as before rounding.
    A learner's claim can lower the amount, never raise it."""
    designated = activity.designations[AMA_PRA_1]
    completions = [e for e in events if e["kind"] in COMPLETION_KINDS]
    attendance = [e for e in events if e["kind"] == "ATTENDED"]
    if activity.format == "live" and attendance:
        hours = Decimal(str(participation_minutes(attendance))) / 60
        if hours < QUARTER:
            return None
        amount = min(designated, round_nearest_quarter(hours))
        basis = attendance
        completed_on = max(_day(e.get("ended_at") or e["occurred_at"]) for e in attendance)
    elif completions:
        amount = designated
        basis = completions
        completed_on = min(_day(e["occurred_at"]) for e in completions)
    else:
        return None
    claimed = _claimed(events, AMA_PRA_1)
    if claimed is not None:
        amount = min(amount, claimed)
    if amount < QUARTER:
        return None
    evidence = tuple(sorted(map(event_key, basis)))
    return CreditDecision(AMA_PRA_1, amount.quantize(Decimal("0.01")), completed_on, evidence)


RULES = {AMA_PRA_1: ama_pra_1}


def decide_credits(activity: Activity, profession: str | None, events: list[Mapping[str, Any]]) -> list[CreditDecision]:
    """Every credit the evidence earns for a learner of `profession`; types they cannot receive are skipped."""
    decisions = []
    for credit_type, rule in RULES.items():
        if credit_type not in activity.designations or ACCREDITOR_OF[credit_type] not in activity.accreditors:
            continue
        if profession not in ELIGIBLE_PROFESSIONS[credit_type]:
            continue
        decision = rule(activity, events)
        if decision is not None:
            decisions.append(decision)
    return decisions
