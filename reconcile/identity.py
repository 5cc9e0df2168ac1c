"""Identity resolution: which learner an event is about (DESIGN §4.1).

Keys are matched in priority order NPI → licence (number + state + profession) → board id → normalised email
→ (family name, given initial, dob MM-DD). An event is never allowed to merge two learners: if its keys point
at two known learners, or at one learner who already holds a *different* strong id of the same kind, it is an
IDENTITY_CONFLICT, and a person resolves to exactly the learner they resolved to before.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reconcile.names import uuid5

LEARNER_NAMESPACE = uuid.UUID("6f1d8f3e-8a51-4a8e-9c55-3a2f0c1b7d42")

IdentityKey = tuple[str, str]

NPI = "npi"
LICENCE = "licence"
BOARD_ID = "board_id"
EMAIL = "email"
NAME_DOB = "name_dob"
STRONG_KINDS = (NPI, LICENCE, BOARD_ID)

_WHITESPACE = re.compile(r"\s")
_DOB = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NPI_PREFIX = "80840"  # the card-issuer prefix CMS puts in front of the NPI for its Luhn check


def npi_check_digit(first_nine: str) -> int:
    """CMS NPI check-digit rule (domain/credit-rules.md): the Luhn digit over "80840" + the first nine digits."""
    total = 0
    for index, char in enumerate(reversed(_NPI_PREFIX + first_nine)):
        digit = int(char)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


@lru_cache(maxsize=1 << 16)  # a learner's NPI is checked by identity, profile and rejection alike
def npi_is_valid(npi: str) -> bool:
    """Ten digits whose tenth is the CMS check digit of the first nine."""
    if len(npi) != 10 or not npi.isascii() or not npi.isdigit():
        return False
    return npi_check_digit(npi[:9]) == int(npi[9])


def normalised_npi(learner: Mapping[str, Any]) -> str | None:
    npi = learner.get("npi")
    return _without_whitespace(str(npi)) if npi else None


@lru_cache(maxsize=1 << 16)  # an event's NPI is read by the NPI check, its identity keys and its profile
def _without_whitespace(text: str) -> str:
    return _WHITESPACE.sub("", text)


def has_invalid_npi(learner: Mapping[str, Any]) -> bool:
    npi = normalised_npi(learner)
    return npi is not None and not npi_is_valid(npi)


def valid_dob(value: object) -> str | None:
    """A date of birth as "MM-DD" (29 February allowed), or None when absent or malformed."""
    return _valid_dob(str(value).strip() if value else "")


@lru_cache(maxsize=1024)  # 366 valid days, and whatever malformed text keeps arriving
def _valid_dob(text: str) -> str | None:
    match = _DOB.match(text)
    if not match or int(match.group(2)) > _DAYS_IN_MONTH[int(match.group(1)) - 1]:
        return None
    return text


@lru_cache(maxsize=1 << 16)  # a learner's name is normalised with every event that reports it
def _name(text: str) -> str:
    """Case, accents, spaces, hyphens and apostrophes do not tell two people apart ("O'Neil-Díaz" = "oneildiaz")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum()).lower()


def licence_key(licence: Mapping[str, Any]) -> str:
    number = _without_whitespace(str(licence.get("number") or "")).upper()
    state = str(licence.get("state") or "").strip().upper()
    profession = str(licence.get("profession") or "").strip().upper()
    return f"{number}|{state}|{profession}"


def identity_keys(learner: Mapping[str, Any]) -> list[IdentityKey]:
    """Normalised identity keys of a learner record, strongest first. An NPI failing its check digit is not
    an identifier (and its event is dead-lettered before resolution: see `engine.resolve_events`)."""
    keys: list[IdentityKey] = []
    npi = normalised_npi(learner)
    if npi and npi_is_valid(npi):
        keys.append((NPI, npi))
    licence = learner.get("licence")
    if licence and licence.get("number") and licence.get("state") and licence.get("profession"):
        keys.append((LICENCE, licence_key(licence)))
    if (board_id := learner.get("board_id")) and (board_id := str(board_id).strip()):
        keys.append((BOARD_ID, board_id.upper()))
    if (email := learner.get("email")) and (email := str(email).strip()):
        keys.append((EMAIL, email.lower().removeprefix("mailto:")))
    if (
        (family := _name(learner.get("family_name") or ""))
        and (given := _name(learner.get("given_name") or ""))
        and (dob := valid_dob(learner.get("dob_month_day")))
    ):
        keys.append((NAME_DOB, f"{family}|{given[0]}|{dob}"))
    return keys


def _slot(key: IdentityKey) -> str | None:
    """What a strong id identifies uniquely: one NPI and one board id per person, one licence number per
    state and profession. Two different values in one slot are two different people."""
    kind, value = key
    if kind == LICENCE:
        return f"{LICENCE}:{value.split('|', 1)[1]}"
    return kind if kind in STRONG_KINDS else None


def new_learner_id(keys: Sequence[IdentityKey]) -> str:
    """Derived from the strongest key, so replaying the same events into an empty ledger gives the same
    learner ids (and so the same credit record ids)."""
    kind, value = keys[0]
    return uuid5(LEARNER_NAMESPACE, f"{kind}:{value}")


@dataclass(frozen=True, slots=True)
class Resolution:
    learner_id: str | None
    new_keys: tuple[IdentityKey, ...] = ()
    conflict: str | None = None


class IdentityIndex:
    """Which learner each key belongs to, and every key each of those learners holds.

    Built from the ledger's view of the learners a batch touches; resolving records new keys in it, so later
    events of the batch see them. `added` holds the keys to store.
    """

    def __init__(self, known: Mapping[IdentityKey, str] | None = None) -> None:
        self.learner_of: dict[IdentityKey, str] = {}
        self.keys_of: dict[str, set[IdentityKey]] = defaultdict(set)
        self.added: dict[IdentityKey, str] = {}
        for key, learner_id in (known or {}).items():
            self._add(key, learner_id)

    def _add(self, key: IdentityKey, learner_id: str) -> None:
        self.learner_of[key] = learner_id
        self.keys_of[learner_id].add(key)

    def resolve(self, keys: Sequence[IdentityKey]) -> Resolution:
        if not keys:
            return Resolution(None)
        matched = {owner for k in keys if (owner := self.learner_of.get(k)) is not None}
        if len(matched) > 1:
            return Resolution(None, conflict="the event's identifiers belong to different learners")
        if matched:
            (learner_id,) = matched
            held = self.keys_of[learner_id]
            for key in keys:
                # A key the learner holds is theirs; a new one conflicts when it fills a slot they hold.
                if key not in held and (slot := _slot(key)) is not None and any(_slot(k) == slot for k in held):
                    return Resolution(None, conflict=f"the event's {key[0]} differs from the matched learner's")
        else:
            learner_id = new_learner_id(keys)
        new_keys = tuple([k for k in keys if k not in self.learner_of])
        for key in new_keys:
            self._add(key, learner_id)
            self.added[key] = learner_id
        return Resolution(learner_id, new_keys)
