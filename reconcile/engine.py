"""The reconciliation of one batch, as pure functions over plain data (the flow brings the ledger's view).

Step 1 `resolve_events`: each new event → (learner, activity) or a reason-coded rejection.
Step 2 `reconcile_pairs`: all evidence of each touched (learner, activity) → the next credit versions.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from reconcile.catalog import Catalog
from reconcile.credit_rules import RULES, decide_credits, event_key
from reconcile.identity import IdentityKey, identity_keys, resolve_learner
from reconcile.merge import CreditState, merge, record_id_for

UNKNOWN_ACTIVITY = "UNKNOWN_ACTIVITY"
OUTSIDE_ACTIVITY_WINDOW = "OUTSIDE_ACTIVITY_WINDOW"
IDENTITY_CONFLICT = "IDENTITY_CONFLICT"
MISSING_IDENTITY = "MISSING_IDENTITY"

PROFILE_FIELDS = ("npi", "board_id", "given_name", "family_name", "dob_month_day", "email", "profession")


@dataclass(frozen=True)
class Rejection:
    event: Mapping[str, Any]
    reason_code: str
    reason: str


@dataclass(frozen=True)
class ResolvedEvent:
    key: str
    event: Mapping[str, Any]
    learner_id: str | None
    activity_id: str | None


Pair = tuple[str, str]


def resolve_events(
    events: list[Mapping[str, Any]],
    catalog: Catalog,
    known_identities: MutableMapping[IdentityKey, str],
    targets: Mapping[str, Pair],
) -> tuple[list[ResolvedEvent], list[Rejection]]:
    """Attach learner and activity to each event. `known_identities` gains the keys of new learners;
    `targets` maps event keys already in the ledger to their pair, for VOIDED events to find theirs."""
    resolved: list[ResolvedEvent] = []
    rejections: list[Rejection] = []
    batch_targets: dict[str, Pair] = {}
    for event in events:
        key = event_key(event)
        if event["kind"] == "VOIDED":
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
        if not activity.in_window(event["occurred_at"].date()):
            rejections.append(
                Rejection(
                    event,
                    OUTSIDE_ACTIVITY_WINDOW,
                    f"{event['occurred_at'].date()} is outside the accreditation window of {activity.activity_id}",
                )
            )
            continue
        keys = identity_keys(event["learner"])
        resolution = resolve_learner(keys, known_identities)
        if resolution.conflict:
            reason = "the event's identifiers belong to different learners"
            rejections.append(Rejection(event, IDENTITY_CONFLICT, reason))
            continue
        if resolution.learner_id is None:
            rejections.append(Rejection(event, MISSING_IDENTITY, "the event carries no learner identifier"))
            continue
        batch_targets[key] = (resolution.learner_id, activity.activity_id)
        resolved.append(ResolvedEvent(key, event, resolution.learner_id, activity.activity_id))
    return resolved, rejections


def learner_profile(previous: Mapping[str, Any] | None, learner: Mapping[str, Any]) -> dict[str, Any]:
    """The learner's identifiers as last reported; a missing field never erases a known one."""
    profile = dict(previous or {})
    for field in PROFILE_FIELDS:
        if learner.get(field):
            profile[field] = learner[field]
    licence = learner.get("licence")
    if licence:
        profile["licence_number"] = licence["number"]
        profile["licence_state"] = licence["state"]
        profile["profession"] = licence["profession"]
    return profile


def reconcile_pairs(
    evidence: Mapping[Pair, list[Mapping[str, Any]]],
    voided: set[str],
    professions: Mapping[str, str | None],
    catalog: Catalog,
    current: Mapping[str, CreditState],
) -> list[CreditState]:
    """The new credit versions for every touched pair; unchanged records yield nothing."""
    versions: list[CreditState] = []
    for (learner_id, activity_id), events in sorted(evidence.items()):
        activity = catalog.activities.get(activity_id)
        live = [e for e in events if e["kind"] != "VOIDED" and event_key(e) not in voided]
        decisions = (
            {d.credit_type: d for d in decide_credits(activity, professions.get(learner_id), live)} if activity else {}
        )
        for credit_type in RULES:
            record_id = record_id_for(learner_id, activity_id, credit_type)
            state = merge(current.get(record_id), decisions.get(credit_type), learner_id, activity_id, credit_type)
            if state is not None:
                versions.append(state)
    return versions
