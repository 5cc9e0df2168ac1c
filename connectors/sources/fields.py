"""Field parsers every source uses on raw values: strict, and raising RecordError with a stable reason code
that names the field, never its value (values can be PII)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from connectors.sources.base import MAX_FIELD_CHARS, RecordError
from reconcile.boards import certifying_board
from reconcile.identity import npi_is_valid
from reconcile.vocabulary import (
    ENCODING_INVALID,
    FIELD_TOO_LARGE,
    IMPLAUSIBLE_DURATION,
    INVALID_NPI,
    MISSING_IDENTITY,
    SCHEMA_INVALID,
)

# One sitting never lasts longer than this; a longer segment or duration is a clock or unit error.
MAX_MINUTES = 24 * 60
_DOB = re.compile(r"(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
# Days per month in a leap year: 02-29 is a real birthday, 02-30 and 04-31 are not.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# C0 and C1 controls and DEL: no identifier, name, ref or timestamp holds one; they break terminals, CSV
# exports and PostgreSQL text (NUL), so a value carrying one is refused, not cleaned.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Lone surrogates: JSON can escape them (\udc80) and lenient decoders produce them, but they are not text.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What a person's name holds besides letters, marks and digits (O'Neil-Díaz, St. John, Jr.); anything else
# (quotes, semicolons, angle brackets, parentheses) is markup or injection, never a name registries accept.
_NAME_PUNCTUATION = frozenset(" '\u2019.,-")
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
STRONG_IDENTIFIERS = ("npi", "licence", "board_id", "email")


def dotted(data: Any, path: str) -> Any:
    """The value at a dotted path (`learner.ids.npi`) in nested mappings; None where any step is missing."""
    value = data
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def text(value: Any, field: str, *, required: bool = False) -> str | None:
    """A trimmed string from a string or number; None for absent/blank unless `required`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RecordError(SCHEMA_INVALID, f"{field} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(SCHEMA_INVALID, f"{field} must be a string, not {type(value).__name__}")
    result = str(value).strip()
    if len(result) > MAX_FIELD_CHARS:
        raise RecordError(FIELD_TOO_LARGE, f"{field} is longer than {MAX_FIELD_CHARS} characters")
    if _SURROGATE.search(result):
        raise RecordError(ENCODING_INVALID, f"{field} is not valid Unicode text (lone surrogate)")
    if _CONTROL.search(result):
        raise RecordError(SCHEMA_INVALID, f"{field} contains control characters")
    return result


def _name_char(char: str) -> bool:
    return char.isalnum() or char in _NAME_PUNCTUATION or unicodedata.category(char).startswith("M")


def person_name(value: Any, field: str) -> str | None:
    """A given or family name: letters, marks, digits and the punctuation names use, nothing else."""
    raw = text(value, field)
    if raw is not None and not all(_name_char(c) for c in raw):
        raise RecordError(SCHEMA_INVALID, f"{field} holds characters no name has")
    return raw


def instant(value: Any, field: str, *, default_tz: tzinfo | None = None, formats: tuple[str, ...] = ()) -> datetime:
    """An aware datetime from ISO 8601 or one of `formats`; naive times take `default_tz`, else are refused."""
    raw = text(value, field, required=True)
    assert raw is not None
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        for pattern in formats:
            try:
                moment = datetime.strptime(raw, pattern)
                break
            except ValueError:
                continue
    if moment is None:
        raise RecordError(SCHEMA_INVALID, f"{field} is not a timestamp in a known format")
    if moment.tzinfo is None:
        if default_tz is None:
            raise RecordError(SCHEMA_INVALID, f"{field} has no time zone")
        moment = moment.replace(tzinfo=default_tz)
    return moment.astimezone(UTC)


def optional_instant(
    value: Any, field: str, *, default_tz: tzinfo | None = None, formats: tuple[str, ...] = ()
) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return instant(value, field, default_tz=default_tz, formats=formats)


def plausible_minutes(minutes: float, field: str, limit: float = MAX_MINUTES) -> float:
    if not 0 < minutes <= limit:
        raise RecordError(IMPLAUSIBLE_DURATION, f"{field} must be more than 0 and at most {limit:g} minutes")
    return minutes


def number(value: Any, field: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RecordError(SCHEMA_INVALID, f"{field} must be a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RecordError(SCHEMA_INVALID, f"{field} must be a number") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise RecordError(SCHEMA_INVALID, f"{field} must be a finite number")
    return result


def segment_minutes(started_at: datetime, ended_at: datetime, what: str) -> float:
    """Minutes between join and leave, refusing a leave before the join or an absurd length."""
    return plausible_minutes((ended_at - started_at).total_seconds() / 60, f"{what} (leave - join)")


def iso_duration_minutes(value: Any, field: str) -> float:
    """ISO 8601 duration (the subset xAPI uses: PnDTnHnMnS) in minutes."""
    raw = text(value, field, required=True)
    assert raw is not None
    if raw.startswith("-"):
        raise RecordError(IMPLAUSIBLE_DURATION, f"{field} is negative")
    match = _DURATION.match(raw)
    if not match or raw in ("P", "PT") or raw.endswith("T"):
        raise RecordError(SCHEMA_INVALID, f"{field} is not an ISO 8601 duration")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 1440 + parts["h"] * 60 + parts["m"] + parts["s"] / 60


def npi(value: Any, field: str = "npi") -> str | None:
    raw = text(value, field)
    if raw is None:
        return None
    if not npi_is_valid(raw):
        raise RecordError(INVALID_NPI, f"{field} is not a 10-digit NPI with a valid check digit")
    return raw


def email(value: Any, field: str = "email") -> str | None:
    raw = text(value, field)
    if raw is None:
        return None
    raw = raw.removeprefix("mailto:")
    if raw.count("@") != 1 or raw.startswith("@") or raw.endswith("@") or any(c.isspace() for c in raw):
        raise RecordError(SCHEMA_INVALID, f"{field} is not an e-mail address")
    return raw


def profession(value: Any, field: str = "profession") -> str | None:
    """MD, DO, RN, NP, CNS, PA… as written on sign-in sheets ("M.D.", "do") in their canonical form."""
    raw = text(value, field)
    return raw.replace(".", "").replace(" ", "").upper() if raw else None


def dob_month_day(value: Any, field: str = "dob_month_day") -> str | None:
    raw = text(value, field)
    if raw is None:
        return None
    if not _DOB.fullmatch(raw) or int(raw[3:]) > _MONTH_DAYS[int(raw[:2]) - 1]:
        raise RecordError(SCHEMA_INVALID, f"{field} is not a real MM-DD")
    return raw


_YES = frozenset({"true", "yes", "y", "1"})
_NO = frozenset({"false", "no", "n", "0"})


def consent(value: Any, field: str = "moc_consent") -> bool | None:
    """A yes/no answer as sign-in sheets, JSON and xAPI write it (true, "Yes", "y", 1); None when unanswered."""
    if value is None or isinstance(value, bool):
        return value
    raw = text(value, field)
    if raw is None:
        return None
    if raw.lower() in _YES | _NO:
        return raw.lower() in _YES
    raise RecordError(SCHEMA_INVALID, f"{field} must be yes or no")


def board(value: Any, field: str = "board") -> str | None:
    """The certifying board in its PARS spelling; a board we do not know passes as written, so that the credit
    rules hold its MOC with a reason (UNKNOWN_BOARD) instead of the record being dropped here."""
    raw = text(value, field)
    return certifying_board(raw) or raw


def learner(values: Mapping[str, Any]) -> dict[str, Any]:
    """A LearnerIdentity from raw values under our field names (`npi`, `email`, `board_id`, `given_name`,
    `family_name`, `dob_month_day`, `profession`, `licence_number`, `licence_state`, `board`, `moc_consent`;
    absent = None); MISSING_IDENTITY unless the identity rules can match on something."""
    number_, state = (
        text(values.get("licence_number"), "licence_number"),
        text(values.get("licence_state"), "licence_state"),
    )
    prof = profession(values.get("profession"))
    licence = None
    if number_ and state and prof:
        licence = {"number": number_, "state": state.upper(), "profession": prof}
    identity = {
        "npi": npi(values.get("npi")),
        "email": email(values.get("email")),
        "licence": licence,
        "board_id": text(values.get("board_id"), "board_id"),
        "given_name": person_name(values.get("given_name"), "given_name"),
        "family_name": person_name(values.get("family_name"), "family_name"),
        "dob_month_day": dob_month_day(values.get("dob_month_day")),
        "profession": prof,
        "board": board(values.get("board")),
        "moc_consent": consent(values.get("moc_consent")),
    }
    named = identity["given_name"] and identity["family_name"] and identity["dob_month_day"]
    if not any(identity[key] for key in STRONG_IDENTIFIERS) and not named:
        raise RecordError(MISSING_IDENTITY, "no NPI, licence, board id, e-mail, or name with date of birth")
    return identity
