"""Requirement profiles: what a licence or certification cycle asks for, as data (`deploy/profiles/*.toml`).

A profile names the cycle (its length in months and whether it ends on the licence expiry or on 31 December of
the expiry year), which licences it applies to by default (state + profession), how credit types are recognised
(e.g. NCCPA counts AMA PRA Category 1 as PA Category 1) and its requirements. A requirement counts credits of
the listed types, optionally only on activities tagged with one of its topics (catalog `tags`), caps how much of
a credit type counts, and is either per cycle or one-time (`period = "once"`: credits from any date up to the
cycle end count). `only_for` limits a requirement to learners with a roster attribute (e.g. DEA registrants).

Every field is checked when the file is read; an error names the file and the field, e.g.
`fl-md.toml: requirements[1].minimum: Input should be greater than 0`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from reconcile.credit_types import CREDIT_TYPES, PROFESSIONS

CYCLE_ENDS_ON_EXPIRY = "expiry"
CYCLE_ENDS_AT_YEAR_END = "year_end"  # 31 December of the expiry year (NCCPA's "logged by 31 December")
PER_CYCLE = "cycle"
ONE_TIME = "once"

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)]
Amount = Annotated[Decimal, Field(ge=0, max_digits=8, decimal_places=2)]


class ProfileError(ValueError):
    """A profile file or the set of profiles is unusable; the message names the file and the field."""


def _credit_type(code: str) -> str:
    if code not in CREDIT_TYPES:
        raise ValueError(f"{code!r} is not a credit type ({', '.join(CREDIT_TYPES)})")
    return code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirement(_Strict):
    id: Slug
    name: Text
    credit_types: tuple[str, ...] = Field(min_length=1)
    minimum: Amount = Field(gt=0)
    topics: tuple[Tag, ...] = ()
    caps: dict[str, Amount] = Field(default_factory=dict)
    period: Literal["cycle", "once"] = PER_CYCLE
    only_for: tuple[Tag, ...] = ()

    @field_validator("credit_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a credit type twice")
        return tuple(_credit_type(code) for code in value)

    @model_validator(mode="after")
    def _caps_on_counted_types(self) -> Requirement:
        for code in self.caps:
            if code not in self.credit_types:
                raise ValueError(f"caps.{code}: only a credit type the requirement counts can be capped")
        return self


class AppliesTo(_Strict):
    """A licence this profile applies to by default; no state = any state (national certifications)."""

    profession: str
    state: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None

    @field_validator("profession")
    @classmethod
    def _known_profession(cls, value: str) -> str:
        if value not in PROFESSIONS:
            raise ValueError(f"{value!r} is not a profession ({', '.join(sorted(PROFESSIONS))})")
        return value


class Profile(_Strict):
    id: Slug
    name: Text
    board: Text
    source: Text
    example: bool = Field(description="True: an example to check against the board's current rules.")
    cycle_months: int = Field(ge=1, le=120)
    cycle_ends: Literal["expiry", "year_end"] = CYCLE_ENDS_ON_EXPIRY
    applies_to: tuple[AppliesTo, ...] = ()
    recognise: dict[str, str] = Field(default_factory=dict, description="credit type → the type it counts as")
    requirements: tuple[Requirement, ...] = Field(min_length=1)

    @field_validator("recognise")
    @classmethod
    def _known_recognitions(cls, value: dict[str, str]) -> dict[str, str]:
        for source, target in value.items():
            _credit_type(source)
            _credit_type(target)
            if source == target or target in value:
                raise ValueError(f"{source} → {target}: a type is recognised as another, once")
        return value

    @model_validator(mode="after")
    def _requirements_consistent(self) -> Profile:
        seen: set[str] = set()
        for index, requirement in enumerate(self.requirements):
            if requirement.id in seen:
                raise ValueError(f"requirements[{index}].id: {requirement.id!r} is used twice")
            seen.add(requirement.id)
            for code in requirement.credit_types:
                if code in self.recognise:
                    raise ValueError(
                        f"requirements[{index}].credit_types: {code} counts as {self.recognise[code]} in this "
                        f"profile; list {self.recognise[code]}"
                    )
        return self

    @property
    def credit_types(self) -> tuple[str, ...]:
        """Every credit type some requirement counts, in the order the profile names them."""
        return tuple(dict.fromkeys(code for r in self.requirements for code in r.credit_types))

    def counted_as(self, credit_type: str) -> str:
        return self.recognise.get(credit_type, credit_type)


def _where(location: Sequence[int | str]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "profile"


def parse_profile(text: str, origin: str) -> Profile:
    """A profile from TOML text; `origin` (the file name) starts every error message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"{origin}: not valid TOML: {err}") from None
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ProfileError(f"{origin}: {_where(first['loc'])}: {message}") from None


def index_profiles(profiles: Iterable[tuple[str, Profile]]) -> dict[str, Profile]:
    """Profiles by id, from (origin, profile) pairs. Two profiles with one id, or claiming the same licence by
    default, make the set ambiguous: refused, naming both files."""
    by_id: dict[str, Profile] = {}
    origin_of: dict[str, str] = {}
    claimed: dict[AppliesTo, str] = {}
    for origin, profile in profiles:
        if profile.id in by_id:
            raise ProfileError(f"{origin}: id {profile.id!r} is also the id of {origin_of[profile.id]}")
        by_id[profile.id] = profile
        origin_of[profile.id] = origin
        for licence in profile.applies_to:
            if licence in claimed:
                where = f"{licence.state or 'any state'} {licence.profession}"
                raise ProfileError(f"{origin}: applies_to {where} is also claimed by {claimed[licence]}")
            claimed[licence] = origin
    return by_id


def default_profile(profiles: Mapping[str, Profile], state: str | None, profession: str) -> Profile | None:
    """The profile a licence gets when the roster names none: one for its state and profession, else one for
    the profession in any state."""
    wanted_in_order = [AppliesTo(profession=profession, state=state)] if state else []
    wanted_in_order.append(AppliesTo(profession=profession))
    for wanted in wanted_in_order:
        for profile in profiles.values():
            if wanted in profile.applies_to:
                return profile
    return None
