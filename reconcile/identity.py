"""Identity resolution: which learner an event is about (DESIGN §4.1).

Keys are matched in priority order NPI → licence → board id → email → (family name, given initial, dob).
An event whose keys point at two different known learners is an identity conflict, never a merge.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

LEARNER_NAMESPACE = uuid.UUID("6f1d8f3e-8a51-4a8e-9c55-3a2f0c1b7d42")

IdentityKey = tuple[str, str]


def identity_keys(learner: Mapping[str, Any]) -> list[IdentityKey]:
    """Normalised identity keys of a learner record, strongest first."""
    keys: list[IdentityKey] = []
    if learner.get("npi"):
        keys.append(("npi", str(learner["npi"]).strip()))
    licence = learner.get("licence")
    if licence:
        number, state, profession = (str(licence[k]).strip().upper() for k in ("number", "state", "profession"))
        keys.append(("licence", f"{number}|{state}|{profession}"))
    if learner.get("board_id"):
        keys.append(("board_id", str(learner["board_id"]).strip().upper()))
    if learner.get("email"):
        keys.append(("email", str(learner["email"]).strip().lower()))
    family, given, dob = learner.get("family_name"), learner.get("given_name"), learner.get("dob_month_day")
    if family and given and dob:
        keys.append(("name_dob", f"{family.strip().lower()}|{given.strip()[0].lower()}|{dob}"))
    return keys


@dataclass(frozen=True)
class Resolution:
    learner_id: str | None
    new_keys: tuple[IdentityKey, ...] = ()
    conflict: bool = False


def resolve_learner(keys: list[IdentityKey], known: MutableMapping[IdentityKey, str]) -> Resolution:
    """Resolve `keys` against `known` and record new keys in it, so later events in a batch see them.

    A new learner's id is derived from its strongest key, so replaying the same events into an empty
    ledger yields the same learner ids (and so the same credit record ids).
    """
    if not keys:
        return Resolution(None)
    matched = {known[k] for k in keys if k in known}
    if len(matched) > 1:
        return Resolution(None, conflict=True)
    kind, value = keys[0]
    learner_id = matched.pop() if matched else str(uuid.uuid5(LEARNER_NAMESPACE, f"{kind}:{value}"))
    new_keys = tuple(k for k in keys if k not in known)
    for key in new_keys:
        known[key] = learner_id
    return Resolution(learner_id, new_keys)
