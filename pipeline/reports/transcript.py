"""Learner transcripts and the at-risk list: the compliance core (`reconcile/compliance/`) fed from files and
the ledger. Profiles come from `compliance.profiles_dir`, licences from the roster at `compliance.roster_path`,
topics from the activity catalog's tags, credits from the ledger (the latest version of each record).

A roster row is matched to a ledger learner by its identifiers, strongest first, as events are. Nothing here
logs or puts in an error message an identifier's value (NPI, licence number, e-mail are PII).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from ledger.credits import awarded_by_learner
from ledger.learners import learner_ids_matching, learner_profile
from ledger.store import Ledger
from pipeline.catalog import fetch_catalog
from pipeline.config import Settings
from reconcile.compliance.evaluate import OVERDUE, CycleTranscript, EarnedCredit, evaluate
from reconcile.compliance.profiles import Profile, ProfileError, default_profile, index_profiles, parse_profile
from reconcile.compliance.roster import RosterEntry, RosterError, parse_roster
from reconcile.credit_types import PROFESSIONS
from reconcile.identity import EMAIL, LICENCE, NPI, IdentityKey, licence_key, npi_is_valid


class TranscriptError(ValueError):
    """The learner, profile or date asked for does not exist or does not fit; exit code 2."""


@dataclass(frozen=True)
class ComplianceInputs:
    profiles: Mapping[str, Profile]
    roster: Sequence[RosterEntry]
    tags: Mapping[str, tuple[str, ...]]  # activity id → catalog tags
    at_risk_days: int


def load_profiles(directory: Path) -> dict[str, Profile]:
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ProfileError(f"{directory}: no requirement profiles (*.toml)")
    return index_profiles((path.name, parse_profile(path.read_text(encoding="utf-8"), path.name)) for path in files)


def load_roster(path: Path) -> list[RosterEntry]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise RosterError(f"{path}: {err.strerror}") from None
    return parse_roster(text)


def load_inputs(settings: Settings) -> ComplianceInputs:
    """Profiles, roster and catalog tags, each checked; a bad one raises naming its file and field."""
    config = settings.compliance
    catalog = fetch_catalog(settings)
    return ComplianceInputs(
        load_profiles(config.profiles_dir),
        load_roster(config.roster_path),
        {activity_id: activity.tags for activity_id, activity in catalog.activities.items()},
        config.at_risk_days,
    )


# -- the ledger ------------------------------------------------------------------------------------------------


def roster_learners(ledger: Ledger, roster: Sequence[RosterEntry]) -> dict[int, str]:
    """Ledger learner id per roster line, by the entry's strongest identifier the ledger knows."""
    known = ledger.identities(key for entry in roster for key in entry.identity_keys())
    found: dict[int, str] = {}
    for entry in roster:
        for key in entry.identity_keys():
            if key in known:
                found[entry.line] = known[key]
                break
    return found


def earned_credits(
    ledger: Ledger, learner_ids: Iterable[str], tags: Mapping[str, tuple[str, ...]]
) -> dict[str, list[EarnedCredit]]:
    """Per learner, the latest version of each credit record when it is AWARDED, with its activity's tags."""
    return {
        learner_id: [
            EarnedCredit(
                a.record_id,
                a.activity_id,
                a.activity_title,
                a.credit_type,
                a.amount,
                a.completed_on,
                tags.get(a.activity_id, ()),
            )
            for a in awarded
        ]
        for learner_id, awarded in awarded_by_learner(ledger, learner_ids).items()
    }


# A prefix shorter than this would match half the ledger; reports print eight characters.
MIN_ID_PREFIX = 4
_ID_PREFIX = re.compile(r"^[0-9a-f-]+$")


def _known_learner(ledger: Ledger, learner_id: str) -> str | None:
    """The ledger learner id `learner_id` is, or is the unique prefix of (as reports print it), else None: every
    learner holds at least one identity key. A prefix two learners share is refused naming neither."""
    text = learner_id.lower()
    if len(text) < MIN_ID_PREFIX or not _ID_PREFIX.match(text):
        return None
    found = learner_ids_matching(ledger, text)
    if len(found) > 1:
        raise TranscriptError(f"learner id prefix {text!r} matches several learners: give more characters")
    return found[0] if found else None


def learner_name(ledger: Ledger, learner_id: str) -> str | None:
    """The learner's name as the ledger's profile has it (PII: for the transcript page, never for a log)."""
    profile = learner_profile(ledger, learner_id)
    name = " ".join(str(profile[k]) for k in ("given_name", "family_name") if profile.get(k))
    return name or None


# -- one learner -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LicenceTranscript:
    """One licence's cycle: the roster row it comes from (None when given on the command line)."""

    entry: RosterEntry | None
    transcript: CycleTranscript


@dataclass(frozen=True)
class LearnerTranscripts:
    learner_id: str | None  # None: on the roster but never seen by the ledger (no credits yet)
    cycles: list[LicenceTranscript] = field(default_factory=list)
    name: str | None = None  # from the ledger's learner profile (PII: the page's reader is the learner/employer)

    @property
    def at_risk(self) -> bool:
        return any(c.transcript.at_risk for c in self.cycles)

    @property
    def overdue(self) -> bool:
        return any(c.transcript.status == OVERDUE for c in self.cycles)


def _matches(entry: RosterEntry, learner: str) -> bool:
    """Whether a roster row is the learner named by an NPI, an e-mail, the employer's employee id or a licence
    `STATE:NUMBER`."""
    text = learner.strip()
    state, _, number = text.rpartition(":")
    return (
        entry.npi == text
        or (bool(entry.employee_id) and entry.employee_id.lower() == text.lower())
        or (entry.email or "").lower() == text.lower()
        or (bool(state) and entry.licence_state == state.upper() and entry.licence_number == number)
    )


def identify_learner(
    ledger: Ledger, roster: Sequence[RosterEntry], learner: str
) -> tuple[str | None, list[RosterEntry]]:
    """The ledger learner id (None: on the roster, never seen by the ledger) and the roster rows of the learner
    named by a learner id or its prefix, an employee id, an NPI, an e-mail or a licence `STATE:NUMBER`."""
    text = learner.strip()
    learner_id = _known_learner(ledger, text)
    if learner_id is None:
        keys: list[IdentityKey] = []
        if npi_is_valid(text):
            keys.append((NPI, text))
        if "@" in text:
            keys.append((EMAIL, text.lower()))
        state, _, number = text.rpartition(":")
        if state and number:
            licence = {"number": number, "state": state}
            keys += [(LICENCE, licence_key({**licence, "profession": p})) for p in sorted(PROFESSIONS)]
        known = ledger.identities(keys)
        learner_id = next((known[k] for k in keys if k in known), None)
    by_line = roster_learners(ledger, roster)
    entries = [e for e in roster if _matches(e, text) or (learner_id and by_line.get(e.line) == learner_id)]
    if learner_id is None and entries:
        learner_id = next((by_line[e.line] for e in entries if e.line in by_line), None)
    if learner_id is None and not entries:
        raise TranscriptError("no learner in the ledger or on the roster matches that identifier")
    return learner_id, entries


def assigned_profile(entry: RosterEntry, profiles: Mapping[str, Profile]) -> Profile:
    """The roster's named profile, else the default for the licence's state and profession."""
    where = f"compliance roster line {entry.line}"
    if entry.profile_id:
        if entry.profile_id not in profiles:
            raise TranscriptError(f"{where}: no profile {entry.profile_id!r} ({', '.join(sorted(profiles))})")
        return profiles[entry.profile_id]
    profile = default_profile(profiles, entry.licence_state, entry.profession)
    if profile is None:
        licence = f"{entry.licence_state or 'no state'} {entry.profession}"
        raise TranscriptError(f"{where}: no profile applies to {licence}; name one in the profile column")
    return profile


def learner_transcripts(
    ledger: Ledger,
    inputs: ComplianceInputs,
    learner: str,
    as_of: date,
    profile_id: str | None = None,
    expires: date | None = None,
) -> LearnerTranscripts:
    """The learner's cycles: one per roster licence, or only those of `profile_id`. A profile none of the
    learner's licences has is evaluated against the first licence's expiry (what-if), or `expires`; `expires`
    replaces the roster's expiry. A learner not on the roster needs both."""
    learner_id, entries = identify_learner(ledger, inputs.roster, learner)
    if profile_id is not None and profile_id not in inputs.profiles:
        raise TranscriptError(f"no profile {profile_id!r} ({', '.join(sorted(inputs.profiles))})")
    pairs = [(e, assigned_profile(e, inputs.profiles)) for e in entries]
    if profile_id is not None:
        chosen = [(e, p) for e, p in pairs if p.id == profile_id]
        pairs = chosen or [(e, inputs.profiles[profile_id]) for e in entries[:1]]
    todo: list[tuple[RosterEntry | None, Profile, date]] = [(e, p, expires or e.licence_expires) for e, p in pairs]
    if not todo:
        if profile_id is None or expires is None:
            raise TranscriptError("the learner is not on the compliance roster: give --profile and --expires")
        todo = [(None, inputs.profiles[profile_id], expires)]
    credits = earned_credits(ledger, [learner_id], inputs.tags).get(learner_id, []) if learner_id else []
    cycles = [
        LicenceTranscript(
            replace(entry, licence_expires=expiry) if entry else None,
            evaluate(profile, expiry, credits, as_of, entry.attributes if entry else frozenset(), inputs.at_risk_days),
        )
        for entry, profile, expiry in todo
    ]
    return LearnerTranscripts(learner_id, cycles, learner_name(ledger, learner_id) if learner_id else None)


# -- everyone on the roster: the nightly at-risk list -------------------------------------------------------------


@dataclass(frozen=True)
class AtRisk:
    entry: RosterEntry
    learner_id: str | None
    transcript: CycleTranscript


@dataclass(frozen=True)
class ComplianceSummary:
    as_of: date
    evaluated: int
    at_risk: list[AtRisk]  # by employer, then deadline
    unassigned: list[str]  # roster rows without a usable profile: the reason, without PII


def compliance_summary(ledger: Ledger, inputs: ComplianceInputs, as_of: date) -> ComplianceSummary:
    learner_of = roster_learners(ledger, inputs.roster)
    credits = earned_credits(ledger, learner_of.values(), inputs.tags)
    at_risk: list[AtRisk] = []
    unassigned: list[str] = []
    evaluated = 0
    for entry in inputs.roster:
        try:
            profile = assigned_profile(entry, inputs.profiles)
        except TranscriptError as err:
            unassigned.append(str(err))
            continue
        learner_id = learner_of.get(entry.line)
        learned = credits.get(learner_id, []) if learner_id else []
        transcript = evaluate(profile, entry.licence_expires, learned, as_of, entry.attributes, inputs.at_risk_days)
        evaluated += 1
        if transcript.at_risk:
            at_risk.append(AtRisk(entry, learner_id, transcript))
    at_risk.sort(key=lambda a: (a.entry.employer, a.transcript.cycle.end, a.entry.label))
    return ComplianceSummary(as_of, evaluated, at_risk, unassigned)
