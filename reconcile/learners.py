"""What we know about a learner: the identifiers registries need, and the facts credit rules depend on.

A profile keeps, per field, the value reported by the event that happened last (by `occurred_at`, ties by
value), so the same events in any order, in any batches, give the same profile. A missing field never erases
a known one, and a value that fails validation (an NPI failing its check digit, a malformed MM-DD) is never
taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconcile.identity import normalised_npi, npi_is_valid, valid_dob

OBSERVED = "_observed"  # per field group: when the kept value was reported

# Fields that travel together: a licence number means nothing with another report's state.
_GROUPS = {"licence": ("licence_number", "licence_state")}


def reported_profession(learner: Mapping[str, Any]) -> str | None:
    """The licence's profession wins over the free-text one (AttendanceEvent schema)."""
    licence = learner.get("licence") or {}
    profession = str(licence.get("profession") or learner.get("profession") or "").strip().upper()
    return profession or None


def _reported(learner: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The valid identifiers of one event's learner block, by field group."""
    found: dict[str, tuple[str, ...]] = {}
    npi = normalised_npi(learner)
    if npi and npi_is_valid(npi):
        found["npi"] = (npi,)
    for name in ("board_id", "board", "given_name", "family_name", "email"):
        if (value := learner.get(name)) and (value := str(value).strip()):
            found[name] = (value,)
    if dob := valid_dob(learner.get("dob_month_day")):
        found["dob_month_day"] = (dob,)
    if profession := reported_profession(learner):
        found["profession"] = (profession,)
    if isinstance(learner.get("moc_consent"), bool):
        # A later "no" withdraws an earlier "yes": the last answer counts, like any other field.
        found["moc_consent"] = (learner["moc_consent"],)
    licence = learner.get("licence") or {}
    if licence.get("number") and licence.get("state"):
        found["licence"] = (str(licence["number"]).strip(), str(licence["state"]).strip().upper())
    return found


def learner_profile(
    previous: Mapping[str, Any] | None, learner: Mapping[str, Any], reported_at: datetime
) -> dict[str, Any]:
    """`previous` updated with what one event reported at `reported_at`."""
    profile = dict(previous or {})
    observed = dict(profile.get(OBSERVED) or {})
    stamp = reported_at.astimezone(UTC).isoformat()
    for group, values in _reported(learner).items():
        names = _GROUPS.get(group)
        if names is None:  # a group of one field, as all but the licence are
            kept: tuple[Any, ...] = ("" if (value := profile.get(group)) is None else value,)
        else:
            kept = tuple("" if (value := profile.get(n)) is None else value for n in names)
        if group not in observed and any(kept):
            observed[group] = ""  # known before observation stamps existed: any dated report is newer
        # The later report wins, the larger value on a tie: (stamp, values) <= (observed, kept) keeps what is kept.
        if group in observed and ((seen := observed[group]) > stamp or (seen == stamp and values <= kept)):
            continue
        if names is None:
            profile[group] = values[0]
        else:
            profile.update(zip(names, values, strict=True))
        observed[group] = stamp
    profile[OBSERVED] = observed
    return profile


@dataclass(frozen=True, slots=True)
class LearnerFacts:
    """The parts of a profile credit rules look at."""

    profession: str | None = None
    board_id: str | None = None
    dob_month_day: str | None = None
    board: str | None = None
    moc_consent: bool | None = None

    @classmethod
    def of(cls, profile: Mapping[str, Any] | None) -> LearnerFacts:
        profile = profile or {}
        return cls(
            profile.get("profession"),
            profile.get("board_id"),
            profile.get("dob_month_day"),
            profile.get("board"),
            profile.get("moc_consent"),
        )
