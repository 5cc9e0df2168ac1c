"""Licence and profession codes (as state boards, LMSs and sign-in sheets write them) → the professions of the
credit-type table, which decide eligibility (`credit_types`).

The mapping is data: the shipped `deploy/professions.toml`, or the file `professions_path` names in the config.
Codes match without regard to case or punctuation ("pa-c" = "PA-C" = "PAC"). A code the mapping does not
list holds the learner's credit as UNKNOWN_PROFESSION (`credit_rules.decide_credits`) until the mapping or
the learner's data names a known one.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reconcile.credit_types import PROFESSIONS

# A code known to us that no credit type we issue is for (e.g. LPN): no record and no hold.
NO_CREDIT = "NONE"
# Longer "codes" are free text (a sign-in sheet's "family nurse practitioner, Jane"): a hold's reason then
# does not quote them, as they may carry a name.
QUOTABLE_CODE_LENGTH = 12
_NOT_CODE = re.compile(r"[^0-9A-Z]")


class ProfessionMapError(ValueError):
    """The profession mapping is unusable; the message names the code."""


@lru_cache(maxsize=1024)  # read for every decided pair, a few dozen codes in practice
def normalised_code(code: str) -> str:
    return _NOT_CODE.sub("", code.upper())


@dataclass(frozen=True)
class ProfessionMap:
    """Normalised code → a profession of the credit-type table, or NO_CREDIT."""

    codes: Mapping[str, str]

    def profession_of(self, code: str) -> str | None:
        """The credit table's profession for `code`, NO_CREDIT, or None when the mapping does not list it."""
        return self.codes.get(normalised_code(code))

    @classmethod
    def of_credit_table(cls) -> ProfessionMap:
        """Each credit-table profession as itself, and nothing else."""
        return cls({p: p for p in PROFESSIONS})


def unmapped_reason(code: str) -> str:
    """Why a credit is held for `code`: the code itself when it is short enough to be one, never free text."""
    normal = normalised_code(code)
    if normal and len(normal) <= QUOTABLE_CODE_LENGTH:
        return f"the licence/profession code {normal} is not in the profession mapping"
    return "the learner's profession is free text, not a licence/profession code in the profession mapping"


def parse_professions(data: Mapping[str, Any]) -> ProfessionMap:
    """`{"codes": {code: profession}}`; targets are credit-table professions or NO_CREDIT."""
    raw = data.get("codes")
    if not isinstance(raw, dict) or not raw:
        raise ProfessionMapError("the profession mapping needs a non-empty [codes] table")
    targets = sorted(PROFESSIONS | {NO_CREDIT})
    codes: dict[str, str] = {}
    for code, target in raw.items():
        normal = normalised_code(str(code))
        if not normal:
            raise ProfessionMapError(f"profession code {code!r} has no letters or digits")
        if not isinstance(target, str) or target not in targets:
            raise ProfessionMapError(f"profession code {code}: maps to {target!r}, not one of {', '.join(targets)}")
        if codes.get(normal, target) != target:
            raise ProfessionMapError(f"profession code {code}: is {normal} once normalised, mapped twice differently")
        codes[normal] = target
    return ProfessionMap(codes)


def load_professions(path: Path) -> ProfessionMap:
    try:
        return parse_professions(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ProfessionMapError(f"profession mapping {path}: {err}") from err
