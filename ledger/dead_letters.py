"""Dead letters read and settled by kind (stage and reason codes) rather than one by one."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from ledger import tables as t
from ledger.store import Ledger


def resolve_open(ledger: Ledger, stage: str, reason_codes: Sequence[str]) -> int:
    """Mark resolved every open dead letter of `stage` with one of `reason_codes`; return how many. They stay on
    record, resolved."""
    d = t.dead_letters.c
    with ledger.transaction() as conn:
        ids = list(
            conn.scalars(
                select(d.dead_letter_id).where(
                    (d.stage == stage) & d.reason_code.in_(reason_codes) & d.resolved_at.is_(None)
                )
            )
        )
        ledger.resolve_dead_letters(conn, ids)
    return len(ids)
