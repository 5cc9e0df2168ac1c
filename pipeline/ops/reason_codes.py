"""Reason-code filters: a misspelt code is refused instead of quietly matching nothing. The codes themselves
are the `ReasonCode` vocabulary (reconcile/vocabulary.py)."""

from __future__ import annotations

from collections.abc import Iterable

from reconcile.vocabulary import ReasonCode

KNOWN_REASON_CODES = frozenset(ReasonCode)


class UnknownReasonCode(ValueError):
    """A reason code no stage writes and no dead letter carries; exit code 2."""


def check_reason_codes(wanted: Iterable[str], in_ledger: Iterable[str] = ()) -> None:
    """Refuse codes that are neither written by the pipeline nor carried by a stored dead letter (an older
    release's code stays selectable), naming the known ones."""
    known = KNOWN_REASON_CODES | set(in_ledger)
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise UnknownReasonCode(
            f"unknown reason code {', '.join(unknown)}; known reason codes: {', '.join(sorted(known))}"
        )
