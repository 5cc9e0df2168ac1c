"""Where a learner stands in a licence cycle: each requirement's progress, what is missing, days to the deadline.

Rules (figures from the profile; the choices are ours and named here):
- Only AWARDED credits count (the caller passes the latest version of each record), completed within the
  cycle — start and deadline day included — and on or before `as_of` (a transcript "as of" a past date shows
  what was known then). One-time requirements count credits of any date up to the cycle end.
- A credit type the profile recognises as another counts as that type (e.g. AMA_PRA_1 as AAPA_1 for NCCPA).
- A topic requirement counts credits of activities tagged with any of its topics (the catalog's `tags`).
- One activity counts once per requirement: of its credits that the requirement counts, the largest (an NP's
  ANCC_CH and AANP_CH for the same activity are the same hours, not twice the hours).
- A cap limits how much of one credit type counts toward the requirement; the rest is shown as capped.
- At risk: some requirement the learner must meet is not met and the deadline is at most `at_risk_days` away
  (or past). `at_risk_days` is configurable (default 90, our choice: one quarter to catch up).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from reconcile.compliance.cycle import Cycle, cycle_of
from reconcile.compliance.profiles import ONE_TIME, Profile, Requirement

DEFAULT_AT_RISK_DAYS = 90
ZERO = Decimal("0.00")

MET = "met"
ON_TRACK = "on track"
AT_RISK = "at risk"
OVERDUE = "overdue"


@dataclass(frozen=True)
class EarnedCredit:
    """One AWARDED credit record of the learner, with its activity's catalog tags."""

    record_id: str
    activity_id: str
    activity_title: str
    credit_type: str
    amount: Decimal
    completed_on: date
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequirementProgress:
    requirement: Requirement
    applies: bool  # False: an `only_for` requirement the learner is not concerned by
    counted: Decimal = ZERO
    counted_credits: tuple[EarnedCredit, ...] = ()  # the one credit per activity that counted
    capped: Mapping[str, Decimal] = field(default_factory=dict)  # per credit type, what the cap left out

    @property
    def minimum(self) -> Decimal:
        return self.requirement.minimum

    @property
    def met(self) -> bool:
        return not self.applies or self.counted >= self.minimum

    @property
    def missing(self) -> Decimal:
        return max(ZERO, self.minimum - self.counted) if self.applies else ZERO

    @property
    def fraction(self) -> float:
        """Progress from 0 to 1, for a progress bar."""
        return 1.0 if self.met else float(self.counted / self.minimum)


@dataclass(frozen=True)
class CycleTranscript:
    profile: Profile
    cycle: Cycle
    as_of: date
    at_risk_days: int
    credits: tuple[EarnedCredit, ...]  # AWARDED credits completed in the cycle up to as_of, oldest first
    requirements: tuple[RequirementProgress, ...]

    @property
    def days_to_deadline(self) -> int:
        """Negative once the deadline has passed."""
        return (self.cycle.end - self.as_of).days

    @property
    def met(self) -> bool:
        return all(r.met for r in self.requirements)

    @property
    def at_risk(self) -> bool:
        return not self.met and self.days_to_deadline <= self.at_risk_days

    @property
    def status(self) -> str:
        if self.met:
            return MET
        if self.days_to_deadline < 0:
            return OVERDUE
        return AT_RISK if self.at_risk else ON_TRACK

    @property
    def by_credit_type(self) -> dict[str, Decimal]:
        """Credits in the cycle per credit type, as awarded (before recognition, caps or de-duplication)."""
        totals: dict[str, Decimal] = {}
        for credit in self.credits:
            totals[credit.credit_type] = totals.get(credit.credit_type, ZERO) + credit.amount
        return dict(sorted(totals.items()))

    @property
    def by_topic(self) -> dict[str, Decimal]:
        """Per catalog tag, the credit in the cycle of the activities carrying it: per activity its largest
        credit of a type the profile counts (so one activity's hours are not added up per credit type)."""
        totals: dict[str, Decimal] = {}
        for credit in _largest_per_activity(self.credits, self.profile.credit_types, self.profile):
            for tag in credit.tags:
                totals[tag] = totals.get(tag, ZERO) + credit.amount
        return dict(sorted(totals.items()))

    @property
    def missing(self) -> list[RequirementProgress]:
        return [r for r in self.requirements if not r.met]

    def running_counted(self, progress: RequirementProgress) -> list[tuple[date, Decimal]]:
        """What counted toward the requirement by the end of each day one of its credits was completed, oldest
        first (the timeline of the transcript); the caps apply as they fill, so the last total is `counted`."""
        per_type: dict[str, Decimal] = {}
        points: list[tuple[date, Decimal]] = []
        for credit in sorted(progress.counted_credits, key=lambda c: c.completed_on):
            counted_as = self.profile.counted_as(credit.credit_type)
            per_type[counted_as] = per_type.get(counted_as, ZERO) + credit.amount
            total = sum((_capped(progress.requirement, t, amount) for t, amount in per_type.items()), ZERO)
            if points and points[-1][0] == credit.completed_on:
                points.pop()
            points.append((credit.completed_on, total))
        return points


def _largest_per_activity(
    credits: Iterable[EarnedCredit], credit_types: tuple[str, ...], profile: Profile
) -> list[EarnedCredit]:
    best: dict[str, EarnedCredit] = {}
    for credit in credits:
        counted_as = profile.counted_as(credit.credit_type)
        if counted_as not in credit_types:
            continue
        kept = best.get(credit.activity_id)
        # Ties go to the type the profile names first, so the choice does not depend on input order.
        rank = (credit.amount, -credit_types.index(counted_as))
        if kept is None or rank > (kept.amount, -credit_types.index(profile.counted_as(kept.credit_type))):
            best[credit.activity_id] = credit
    return sorted(best.values(), key=lambda c: (c.completed_on, c.activity_id))


def _capped(requirement: Requirement, credit_type: str, amount: Decimal) -> Decimal:
    cap = requirement.caps.get(credit_type)
    return min(amount, cap) if cap is not None else amount


def _progress(
    requirement: Requirement, profile: Profile, credits: Iterable[EarnedCredit], attributes: frozenset[str]
) -> RequirementProgress:
    if not set(requirement.only_for) <= attributes:
        return RequirementProgress(requirement, applies=False)
    topics = set(requirement.topics)
    on_topic = [c for c in credits if not topics or topics & set(c.tags)]
    chosen = _largest_per_activity(on_topic, requirement.credit_types, profile)
    per_type: dict[str, Decimal] = {}
    for credit in chosen:
        counted_as = profile.counted_as(credit.credit_type)
        per_type[counted_as] = per_type.get(counted_as, ZERO) + credit.amount
    counted = ZERO
    capped: dict[str, Decimal] = {}
    for credit_type, amount in per_type.items():
        cap = requirement.caps.get(credit_type)
        if cap is not None and amount > cap:
            capped[credit_type] = amount - cap
            amount = cap
        counted += amount
    return RequirementProgress(requirement, True, counted, tuple(chosen), capped)


def evaluate(
    profile: Profile,
    licence_expires: date,
    credits: Iterable[EarnedCredit],
    as_of: date,
    attributes: Iterable[str] = (),
    at_risk_days: int = DEFAULT_AT_RISK_DAYS,
) -> CycleTranscript:
    """The learner's transcript for the cycle that ends with `licence_expires` (or its year end)."""
    cycle = cycle_of(profile, licence_expires)
    known = [c for c in credits if c.completed_on <= min(as_of, cycle.end)]
    in_cycle = [c for c in known if c.completed_on in cycle]
    learner_attributes = frozenset(a.lower() for a in attributes)
    progress = tuple(
        _progress(r, profile, known if r.period == ONE_TIME else in_cycle, learner_attributes)
        for r in profile.requirements
    )
    ordered = tuple(sorted(in_cycle, key=lambda c: (c.completed_on, c.activity_id, c.credit_type)))
    return CycleTranscript(profile, cycle, as_of, at_risk_days, ordered, progress)
