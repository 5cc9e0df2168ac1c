"""Credit rules: from a learner's live evidence for one activity to a credit amount per credit type.

Figures and sources: ../shared/domain/credit-rules.md (the table in `credit_types`). Each rule's docstring
names its source and, where the sources are silent, the choice we made.

Common to every rule (DESIGN §4.3):
- A scheduled (live/RSS) activity credits participation time when the evidence has any (see
  `participation`); without timed evidence, a completion is the provider's attestation that the learner
  completed the activity and earns the designated amount (our choice). Attendance without any time earns
  nothing: there is no time to credit.
- An enduring activity credits a completion with the designated amount (time reported with it is ignored).
- Rounding first, then the cap: an amount never exceeds the designation.
- A learner's claim can only lower an amount ("claims never exceed participation"); the latest claim per
  credit type counts (by `occurred_at`, then event key), as a later claim corrects an earlier one (our
  choice), and it is rounded like the credit it claims.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from reconcile.boards import CERTIFYING_BOARDS, FULL_CREDIT_ONLY, certifying_board
from reconcile.catalog import Activity
from reconcile.credit_types import ABIM_MOC, CREDIT_TYPES, QUARTER, CreditRule, CreditType, Rounding
from reconcile.learners import LearnerFacts
from reconcile.participation import Participation, participation
from reconcile.professions import NO_CREDIT, ProfessionMap, unmapped_reason
from reconcile.vocabulary import (
    CONSENT_MISSING,
    MISSING_BOARD_IDENTITY,
    PARTIAL_BOARD_CREDIT,
    UNKNOWN_BOARD,
    UNKNOWN_PROFESSION,
)

COMPLETION_KINDS = frozenset({"COMPLETED"})
PARTICIPATION_KINDS = frozenset({"ATTENDED", "COMPLETED"})
CENT = Decimal("0.01")
CREDIT_TABLE_PROFESSIONS = ProfessionMap.of_credit_table()


def event_key(event: Mapping[str, Any]) -> str:
    return f"{event['source']}:{event['event_id']}"


@dataclass(frozen=True, slots=True)
class CreditDecision:
    credit_type: str
    amount: Decimal
    completed_on: date
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HeldCredit:
    """A credit the evidence earns but that cannot be issued yet; it is issued once the gap is filled."""

    credit_type: str | None  # None: every credit type of the activity
    reason_code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Claim:
    amount: Decimal
    on: date
    key: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """One learner's live (not voided) evidence for one activity, summarised once for every rule."""

    participation: Participation | None
    completed_on: date | None  # the first completion
    completion_keys: tuple[str, ...]
    claims: Mapping[str, Claim] = field(default_factory=dict)

    @property
    def creditable(self) -> bool:
        return self.participation is not None or self.completed_on is not None or bool(self.claims)


def summarise(activity: Activity, events: Sequence[Mapping[str, Any]]) -> Evidence:
    attended: list[Mapping[str, Any]] = []
    attended_keys: list[str] = []
    completions: list[tuple[date, str]] = []
    latest: dict[str, tuple[Any, str, Claim]] = {}
    for e in events:  # one pass: this runs for every pair a batch decides
        k, kind = event_key(e), e["kind"]
        if kind in PARTICIPATION_KINDS:
            attended.append(e)
            attended_keys.append(k)
        if kind in COMPLETION_KINDS:
            completions.append((activity.local_day(e["occurred_at"]), k))
        for claim in e.get("claimed") or ():
            order = (e["occurred_at"], k)
            if claim["credit_type"] not in latest or order > latest[claim["credit_type"]][:2]:
                amount = Decimal(str(claim["amount"]))
                latest[claim["credit_type"]] = (*order, Claim(amount, activity.local_day(e["occurred_at"]), k))
    completions.sort()
    return Evidence(
        participation=participation(activity, attended, attended_keys) if activity.scheduled else None,
        completed_on=completions[0][0] if completions else None,
        completion_keys=tuple(sorted([k for _, k in completions])),
        claims={credit_type: claim for credit_type, (_, _, claim) in latest.items()} if latest else {},
    )


def rounded(credit_type: str, activity: Activity, hours: Decimal) -> Decimal:
    """The credit type's rounding (credit_types.Rounding); 60 minutes = 1.00 for every type.

    NEAREST_QUARTER (AMA PRA booklet: "nearest quarter hour"; AAPA mirrors it, our choice): half up, and
    below 0.25 h before rounding there is no credit at all. DOWN_TO_INCREMENT (ANCC sets no rule, "logical and
    defensible"; AANP likewise; ABIM MOC whole or quarter points as designated): down to the activity's
    increment for that type, 0.25 unless the catalog says otherwise (our choice).
    """
    if CREDIT_TYPES[credit_type].rounding is Rounding.NEAREST_QUARTER:
        if hours < QUARTER:
            return Decimal(0)
        return (hours / QUARTER).quantize(Decimal(1), rounding=ROUND_HALF_UP) * QUARTER
    increment = activity.increment(credit_type)
    return (hours / increment).to_integral_value(rounding=ROUND_FLOOR) * increment


def _decision(
    credit_type: str, activity: Activity, evidence: Evidence, amount: Decimal, on: date, keys: Sequence[str]
) -> CreditDecision | None:
    """Cap at the designation, lower to the learner's claim, drop nothing-amounts."""
    if credit_type in activity.designations:
        amount = min(amount, activity.designations[credit_type])
    claim = evidence.claims.get(credit_type)
    if claim is not None and (claimed := rounded(credit_type, activity, claim.amount)) < amount:
        amount, keys = claimed, [*keys, claim.key]
    if amount <= 0:
        return None
    return CreditDecision(credit_type, amount.quantize(CENT), on, tuple(sorted(set(keys))))


def by_participation(
    spec: CreditType, activity: Activity, evidence: Evidence, _awarded: Mapping[str, CreditDecision]
) -> CreditDecision | None:
    """PARTICIPATION: 60 min = 1.00, rounded by the type's rule, capped at the designation. With
    `evaluation_time` (ANCC) the catalog's `evaluation_minutes` count when the learner completed the evaluation
    (a completed/passed event), and the completion date is then the later of the last participation and the
    evaluation. Without timed evidence, a completion earns the designation."""
    timed = evidence.participation
    if timed is not None:
        minutes, on, keys = timed.minutes, timed.last_day, list(timed.evidence)
        if spec.evaluation_time and activity.evaluation_minutes and evidence.completed_on is not None:
            minutes += activity.evaluation_minutes
            on = max(on, evidence.completed_on)
            keys += evidence.completion_keys
        return _decision(spec.code, activity, evidence, rounded(spec.code, activity, minutes / 60), on, keys)
    if evidence.completed_on is not None:
        designated = activity.designations[spec.code]
        return _decision(spec.code, activity, evidence, designated, evidence.completed_on, evidence.completion_keys)
    return None


def by_claim(
    spec: CreditType, activity: Activity, evidence: Evidence, _awarded: Mapping[str, CreditDecision]
) -> CreditDecision | None:
    """CLAIM (AMA PRA Category 2): the learner's latest claim, taken as claimed and rounded by the type's rule,
    dated like the claim; never for an activity designated for `not_with`."""
    claim = evidence.claims.get(spec.code)
    if claim is None or (spec.not_with is not None and spec.not_with in activity.designations):
        return None
    return _decision(spec.code, activity, evidence, rounded(spec.code, activity, claim.amount), claim.on, [claim.key])


def by_portion(
    spec: CreditType, activity: Activity, evidence: Evidence, awarded: Mapping[str, CreditDecision]
) -> CreditDecision | None:
    """PORTION (pharmacology hours): the designated portion times (awarded ÷ designated credit of the type it
    is a portion of), rounded by the type's rule, dated and evidenced like that credit."""
    assert spec.portion_of is not None
    parent = awarded.get(spec.portion_of)
    if parent is None:
        return None
    share = activity.designations[spec.code] * parent.amount / activity.designations[spec.portion_of]
    return _decision(
        spec.code, activity, evidence, rounded(spec.code, activity, share), parent.completed_on, parent.evidence
    )


def by_cap(
    spec: CreditType, activity: Activity, evidence: Evidence, awarded: Mapping[str, CreditDecision]
) -> CreditDecision | None:
    """CAPPED (ABIM MOC): the credit awarded for `capped_by`, rounded by the type's rule, at most the
    designation, dated and evidenced like that credit. PARS needs the diplomate's board id and dob MM-DD: see
    `decide_credits`."""
    assert spec.capped_by is not None
    cap = awarded.get(spec.capped_by)
    if cap is None:
        return None
    return _decision(
        spec.code, activity, evidence, rounded(spec.code, activity, cap.amount), cap.completed_on, cap.evidence
    )


Rule = Callable[[CreditType, Activity, Evidence, Mapping[str, CreditDecision]], CreditDecision | None]

RULES: Mapping[CreditRule, Rule] = {
    CreditRule.PARTICIPATION: by_participation,
    CreditRule.CLAIM: by_claim,
    CreditRule.PORTION: by_portion,
    CreditRule.CAPPED: by_cap,
}


def possible_credit_types(activity: Activity) -> tuple[str, ...]:
    """The credit types an activity can ever yield: its designations, and self-claimed Category 2 when it is
    not certified for Category 1. (A designation later dropped from the catalog leaves its records as they
    are: editing the catalog is not a revocation.)"""
    return _possible_credit_types(activity.designated_types)


@lru_cache(maxsize=256)  # by designated types: asked for every decided pair, the same few answers
def _possible_credit_types(designated: frozenset[str]) -> tuple[str, ...]:
    return tuple(
        t
        for t, spec in CREDIT_TYPES.items()
        if t in designated or (not spec.designated and spec.not_with not in designated)
    )


def moc_hold(learner: LearnerFacts, decision: CreditDecision, activity: Activity) -> HeldCredit | None:
    """Why the MOC points cannot go to the learner's certifying board yet, first gap first; None when they can.
    The board needs its id and the dob MM-DD, the board must be named by the source (never guessed) and be one
    of the eight PARS reports to, the learner must have consented to board reporting (ACCME FAQ 7921), and
    ABP takes full credit only (ACCME MOC tips). The AMA PRA credit of the same activity is not held."""
    if not (learner.board_id and learner.dob_month_day):
        return HeldCredit(ABIM_MOC, MISSING_BOARD_IDENTITY, "ABIM MOC needs the board id and dob MM-DD")
    board = certifying_board(learner.board)
    if board is None:
        known = "no certifying board is known" if not learner.board else "the certifying board is not one of them"
        return HeldCredit(ABIM_MOC, UNKNOWN_BOARD, f"MOC goes to one of {', '.join(CERTIFYING_BOARDS)}: {known}")
    if learner.moc_consent is not True:
        answer = "declined" if learner.moc_consent is False else "not given"
        return HeldCredit(ABIM_MOC, CONSENT_MISSING, f"the learner's consent to report MOC to {board} is {answer}")
    if board in FULL_CREDIT_ONLY and decision.amount < activity.designations[ABIM_MOC]:
        reason = f"{board} takes full credit only: the MOC points earned are below the designation"
        return HeldCredit(ABIM_MOC, PARTIAL_BOARD_CREDIT, reason)
    return None


@dataclass(frozen=True, slots=True)
class Decisions:
    awarded: dict[str, CreditDecision]
    held: list[HeldCredit]


def decide_credits(
    activity: Activity,
    profession: str | None,
    learner: LearnerFacts,
    events: Sequence[Mapping[str, Any]],
    professions: ProfessionMap = CREDIT_TABLE_PROFESSIONS,
) -> Decisions:
    """Every credit the live evidence earns for a learner whose licence/profession code is `profession`.

    `professions` maps the code to the credit table's profession (`reconcile.professions`); the default
    knows only the table's own codes. Eligibility (domain file): a credit type needs the activity designated
    for it (except self-claimed Category 2) and the learner's profession among its recipients; otherwise
    there is simply no record of that type (an RN never gets AMA_PRA_1, an LPN mapped to NONE gets nothing,
    and that is not an error). Two gaps hold credit back instead: an unknown profession (UNKNOWN_PROFESSION,
    every type: our choice, so that an attendee known only by email, or by a code the mapping does not list,
    is not silently dropped), and MOC the learner's board cannot take yet (`moc_hold`, for the MOC record only).
    Both are re-decided when the learner's profile or the mapping fills the gap.
    """
    evidence = summarise(activity, events)
    eligible_as = professions.profession_of(profession) if profession is not None else None
    if eligible_as is None:
        if not evidence.creditable:
            return Decisions({}, [])
        reason = "the learner's profession is not known yet" if profession is None else unmapped_reason(profession)
        return Decisions({}, [HeldCredit(None, UNKNOWN_PROFESSION, reason)])
    awarded: dict[str, CreditDecision] = {}
    held: list[HeldCredit] = []
    for spec, rule in _eligible_rules(activity.designated_types, eligible_as):
        decision = rule(spec, activity, evidence, awarded)
        if decision is None:
            continue
        if spec.code == ABIM_MOC and (hold := moc_hold(learner, decision, activity)) is not None:
            held.append(hold)
            continue
        awarded[spec.code] = decision
    return Decisions(awarded, held)


@lru_cache(maxsize=256)  # by designated types and profession: the same few tables for every decided pair
def _eligible_rules(designated: frozenset[str], eligible_as: str) -> tuple[tuple[CreditType, Rule], ...]:
    """The credit types a profession can receive from an activity, in CREDIT_TYPES' order (read types first),
    each with its rule."""
    return tuple(
        (spec, RULES[spec.rule])
        for spec in map(CREDIT_TYPES.__getitem__, _possible_credit_types(designated))
        if eligible_as != NO_CREDIT and eligible_as in spec.professions
    )
