"""The reconciliation of one batch, as pure functions over plain data (the caller brings the ledger's view).

Step 1 `resolve_events`: each new event → (learner, activity) or a reason-coded rejection (DESIGN §4.1-4.2).
Step 2 `reconcile_pairs`: all evidence of each touched (learner, activity) → the next credit versions, and
the credits held back for a gap in the learner's identity (DESIGN §4.3-4.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconcile.catalog import Activity, Catalog
from reconcile.credit_rules import decide_credits, event_key, possible_credit_types
from reconcile.credit_types import ABIM_MOC, AMA_PRA_1, AMA_PRA_2
from reconcile.identity import IdentityIndex, has_invalid_npi, identity_keys
from reconcile.learners import LearnerFacts, reported_profession
from reconcile.merge import CreditState, merge, record_id_for
from reconcile.professions import ProfessionMap
from reconcile.vocabulary import (
    CONSENT_MISSING,
    IDENTITY_CONFLICT,
    INVALID_CLAIM,
    INVALID_NPI,
    MISSING_BOARD_IDENTITY,
    MISSING_IDENTITY,
    MISSING_VOID_TARGET,
    NOT_ACCREDITED,
    OUTSIDE_ACTIVITY_WINDOW,
    PARTIAL_BOARD_CREDIT,
    UNKNOWN_ACTIVITY,
    UNKNOWN_BOARD,
    UNKNOWN_PROFESSION,
)

HOURS_PER_ACTIVITY_DAY = 24
UNKNOWN_LEARNER = LearnerFacts()

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Rejection:
    event: Mapping[str, Any]
    reason_code: str
    reason: str


@dataclass(frozen=True, slots=True)
class ResolvedEvent:
    key: str
    event: Mapping[str, Any]
    learner_id: str | None
    activity_id: str | None


def _claim_problem(activity: Activity, event: Mapping[str, Any]) -> tuple[str, str] | None:
    """Claims must be for a credit type the activity can give, and plausible amounts."""
    for claim in event.get("claimed") or ():
        credit_type, amount = claim["credit_type"], claim["amount"]
        if credit_type == AMA_PRA_2:
            if AMA_PRA_1 in activity.designations:
                return (
                    NOT_ACCREDITED,
                    f"{activity.activity_id} is certified for AMA_PRA_1, so AMA_PRA_2 cannot be claimed",
                )
            limit = HOURS_PER_ACTIVITY_DAY * activity.activity_days()
            if not 0 < amount <= limit:
                return INVALID_CLAIM, f"an AMA_PRA_2 claim must be above 0 and at most {limit} for this activity"
        elif credit_type not in activity.designations:
            return NOT_ACCREDITED, f"{activity.activity_id} is not designated for {credit_type}"
        elif amount <= 0:
            return INVALID_CLAIM, f"a {credit_type} claim must be above 0"
    return None


def _activity_problem(activity: Activity, event: Mapping[str, Any]) -> tuple[str, str] | None:
    if not activity.open_at(event["occurred_at"]):
        day = activity.local_day(event["occurred_at"])
        return OUTSIDE_ACTIVITY_WINDOW, f"{day} is outside the accreditation window of {activity.activity_id}"
    claimed = event.get("claimed")
    if not activity.designations and not (claimed and any(c["credit_type"] == AMA_PRA_2 for c in claimed)):
        return NOT_ACCREDITED, f"{activity.activity_id} is not designated for any credit"
    return _claim_problem(activity, event) if claimed else None


def resolve_events(
    events: Sequence[Mapping[str, Any]],
    catalog: Catalog,
    identities: IdentityIndex,
    targets: Mapping[str, Pair],
) -> tuple[list[ResolvedEvent], list[Rejection]]:
    """Attach learner and activity to each event, in order; `identities` gains the keys of accepted events.
    `targets` maps event keys already in the ledger to their pair, for VOIDED events to find theirs.

    An NPI failing its check digit dead-letters the event (INVALID_NPI) rather than being ignored (our
    choice): the learner block was mistyped, and matching on its other fields could file the credit to the
    wrong physician or report them to PARS without the NPI they expect. The source corrects and resends it.
    """
    resolved: list[ResolvedEvent] = []
    rejections: list[Rejection] = []
    batch_targets: dict[str, Pair] = {}
    for event in events:
        key = event_key(event)
        if event["kind"] == "VOIDED":
            if not event.get("voids_event_id"):
                rejections.append(Rejection(event, MISSING_VOID_TARGET, "a VOIDED event names no event to void"))
                continue
            target = f"{event['source']}:{event['voids_event_id']}"
            pair = batch_targets.get(target) or targets.get(target)
            # A void can arrive before the event it voids; it is kept and applied when that event lands.
            resolved.append(ResolvedEvent(key, event, *(pair or (None, None))))
            continue
        activity = catalog.resolve(event.get("activity_ref") or "")
        if activity is None:
            reason = f"activity ref {event.get('activity_ref')!r} is not in the catalog"
            rejections.append(Rejection(event, UNKNOWN_ACTIVITY, reason))
            continue
        if problem := _activity_problem(activity, event):
            rejections.append(Rejection(event, *problem))
            continue
        if has_invalid_npi(event["learner"]):
            rejections.append(Rejection(event, INVALID_NPI, "the NPI fails the CMS check digit"))
            continue
        resolution = identities.resolve(identity_keys(event["learner"]))
        if resolution.conflict:
            rejections.append(Rejection(event, IDENTITY_CONFLICT, resolution.conflict))
            continue
        if resolution.learner_id is None:
            rejections.append(Rejection(event, MISSING_IDENTITY, "the event carries no learner identifier"))
            continue
        batch_targets[key] = (resolution.learner_id, activity.activity_id)
        resolved.append(ResolvedEvent(key, event, resolution.learner_id, activity.activity_id))
    return resolved, rejections


def pair_profession(
    events: Sequence[Mapping[str, Any]], learner: LearnerFacts, professions: ProfessionMap
) -> str | None:
    """The profession reported with the evidence itself, latest first: eligibility is the learner's at the
    time of the activity (an RN who later became an NP does not earn NP credit for earlier activities).
    Codes the mapping does not know are passed over for a known one, then for the learner's profile (a code
    nobody can read says nothing about eligibility); with no known code at all, the latest reported one, for
    the hold to name."""
    latest_known: tuple[Any, str, str] | None = None  # (occurred_at, event key, code): later is larger
    latest: tuple[Any, str, str] | None = None
    for e in events:  # the latest report, not a sort of them all: this runs for every decided pair
        if code := reported_profession(e.get("learner") or {}):
            report = (e["occurred_at"], event_key(e), code)
            if latest is None or report > latest:
                latest = report
            if professions.profession_of(code) is not None and (latest_known is None or report > latest_known):
                latest_known = report
    if latest_known is not None:
        return latest_known[2]
    if learner.profession and professions.profession_of(learner.profession) is not None:
        return learner.profession
    return latest[2] if latest is not None else learner.profession or None


@dataclass(frozen=True, slots=True)
class Hold:
    """A pair's credit held back (or no longer held back) for a gap in what we know of the learner."""

    learner_id: str
    activity_id: str
    reason_code: str
    reason: str
    events: tuple[Mapping[str, Any], ...]  # held: the pair's live evidence; settled: all of it, voided too


@dataclass(frozen=True, slots=True)
class Reconciliation:
    versions: list[CreditState]
    held: list[Hold]
    settled: list[Hold]  # holds that could have existed for a pair and no longer apply


MOC_HOLDS = (MISSING_BOARD_IDENTITY, UNKNOWN_BOARD, CONSENT_MISSING, PARTIAL_BOARD_CREDIT)


HOLDS_WITH_MOC = (UNKNOWN_PROFESSION, *MOC_HOLDS)
HOLDS_WITHOUT_MOC = (UNKNOWN_PROFESSION,)


def _possible_holds(activity: Activity) -> tuple[str, ...]:
    return HOLDS_WITH_MOC if ABIM_MOC in activity.designations else HOLDS_WITHOUT_MOC


def reconcile_pairs(
    evidence: Mapping[Pair, Sequence[Mapping[str, Any]]],
    voided: set[str],
    learners: Mapping[str, LearnerFacts],
    catalog: Catalog,
    current: Mapping[str, CreditState],
    *,
    professions: ProfessionMap,
) -> Reconciliation:
    """The new credit versions of every touched pair; unchanged records yield nothing.

    The profession is the one reported with the pair's evidence, else the learner's profile, read through
    `professions` (licence/profession codes → the credit table's professions). A pair whose
    activity has left the catalog is not touched (our choice: dropping an activity from the catalog file is
    not a revocation of the credit already issued for it).
    """
    result = Reconciliation([], [], [])
    for pair in sorted(evidence):
        learner_id, activity_id = pair
        activity = catalog.activities.get(activity_id)
        if activity is None:
            continue
        evidence_events = tuple([e for e in evidence[pair] if e["kind"] != "VOIDED"])
        live = tuple([e for e in evidence_events if event_key(e) not in voided])
        facts = learners.get(learner_id) or UNKNOWN_LEARNER
        decisions = decide_credits(activity, pair_profession(live, facts, professions), facts, live, professions)
        held = {h.reason_code: h.reason for h in decisions.held}
        for reason_code in _possible_holds(activity):
            if reason_code in held:
                result.held.append(Hold(learner_id, activity_id, reason_code, held[reason_code], live))
            else:
                result.settled.append(Hold(learner_id, activity_id, reason_code, "", evidence_events))
        awarded = decisions.awarded
        for credit_type in possible_credit_types(activity):
            record = current.get(record_id_for(learner_id, activity_id, credit_type))
            decision = awarded.get(credit_type)
            if record is None and decision is None:
                continue  # most types of a pair: never earned (another profession's), so nothing to merge
            state = merge(record, decision, learner_id, activity_id, credit_type)
            if state is not None:
                result.versions.append(state)
    return result
