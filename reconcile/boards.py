"""The eight certifying boards that take MOC through ACCME PARS (domain/registries.md §1, [A1]) and the rules
that differ by board. A learner's board comes from the source with the board id; it is never guessed.
"""

from __future__ import annotations

from typing import Any

CERTIFYING_BOARDS = ("ABA", "ABIM", "ABOS", "ABOHNS", "ABPath", "ABP", "ABS", "ABTS")
# ACCME also writes ABOHNS as "ABOto"; sources write codes in any case.
_ALIASES = {code.upper(): code for code in CERTIFYING_BOARDS} | {"ABOTO": "ABOHNS"}
# ABP: one report per learner and activity, after the evaluation, full credit only [A13].
FULL_CREDIT_ONLY = frozenset({"ABP"})
REPORTED_ONCE = frozenset({"ABP"})


def certifying_board(value: Any) -> str | None:
    """The board's PARS code for a source's spelling of it; None when it is not one of the eight."""
    return _ALIASES.get(str(value or "").strip().upper())
