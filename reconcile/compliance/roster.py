"""The compliance roster: which licences the learners hold, when they expire, who employs them, which profile.

CSV, one row per licence (a learner with two state licences has two rows), columns `ROSTER_COLUMNS`:
- identifiers (at least one): `npi`, `licence_number` + `licence_state`, `email` — matched to ledger learners
  the way the reconcile core matches events (`reconcile.identity.identity_keys`);
- `profession` and `licence_expires` (ISO date) — required;
- `profile` — a profile id; empty = the profile that applies to the licence's state and profession by default;
- `employer`, `employee_id` — for the nightly at-risk list per employer;
- `attributes` — `;`-separated learner facts some requirements depend on (e.g. `dea-registrant`).

An error names the line and the column, never a value (identifiers are PII).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from reconcile.credit_types import PROFESSIONS
from reconcile.identity import IdentityKey, identity_keys, npi_is_valid

ROSTER_COLUMNS = (
    "employer",
    "employee_id",
    "npi",
    "email",
    "licence_number",
    "licence_state",
    "profession",
    "licence_expires",
    "profile",
    "attributes",
)
REQUIRED_COLUMNS = ("profession", "licence_expires")


class RosterError(ValueError):
    """The roster is unusable; the message names the line and the column."""


@dataclass(frozen=True)
class RosterEntry:
    line: int
    profession: str
    licence_expires: date
    npi: str | None = None
    email: str | None = None
    licence_number: str | None = None
    licence_state: str | None = None
    profile_id: str | None = None
    employer: str = ""
    employee_id: str = ""
    attributes: frozenset[str] = frozenset()

    def identity_keys(self) -> list[IdentityKey]:
        """The ledger identity keys of this learner, strongest first."""
        licence = {"number": self.licence_number, "state": self.licence_state, "profession": self.profession}
        return identity_keys({"npi": self.npi, "email": self.email, "licence": licence})

    @property
    def label(self) -> str:
        """How reports name the licence without PII: employer's employee id, or the roster line."""
        return self.employee_id or f"roster line {self.line}"


def _entry(row: Mapping[str, str | None], line: int) -> RosterEntry:
    def cell(column: str) -> str:
        return (row.get(column) or "").strip()

    def fail(column: str, problem: str) -> RosterError:
        return RosterError(f"compliance roster line {line}: {column} {problem}")

    for column in REQUIRED_COLUMNS:
        if not cell(column):
            raise fail(column, "is empty")
    profession = cell("profession").upper()
    if profession not in PROFESSIONS:
        raise fail("profession", f"must be one of {', '.join(sorted(PROFESSIONS))}")
    try:
        expires = date.fromisoformat(cell("licence_expires"))
    except ValueError:
        raise fail("licence_expires", "is not an ISO date (YYYY-MM-DD)") from None
    state = cell("licence_state").upper()
    if state and (len(state) != 2 or not state.isalpha()):
        raise fail("licence_state", "must be a two-letter state code")
    if cell("licence_number") and not state:
        raise fail("licence_state", "is needed with a licence_number")
    npi = "".join(cell("npi").split())
    if npi and not npi_is_valid(npi):
        raise fail("npi", "fails the NPI check digit")
    entry = RosterEntry(
        line=line,
        profession=profession,
        licence_expires=expires,
        npi=npi or None,
        email=cell("email") or None,
        licence_number=cell("licence_number") or None,
        licence_state=state or None,
        profile_id=cell("profile") or None,
        employer=cell("employer"),
        employee_id=cell("employee_id"),
        attributes=frozenset(a.strip().lower() for a in cell("attributes").split(";") if a.strip()),
    )
    if not entry.identity_keys():
        raise fail("npi", "licence_number + licence_state or email: one is needed to find the learner")
    return entry


def parse_roster(text: str) -> list[RosterEntry]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in ROSTER_COLUMNS]
    if unknown:
        raise RosterError(f"compliance roster: unknown columns {', '.join(unknown)} (use {', '.join(ROSTER_COLUMNS)})")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise RosterError(f"compliance roster: missing columns {', '.join(missing)}")
    entries: list[RosterEntry] = []
    for row in reader:
        if None in row:
            raise RosterError(f"compliance roster line {reader.line_num}: more values than columns")
        entries.append(_entry(row, reader.line_num))
    return entries
