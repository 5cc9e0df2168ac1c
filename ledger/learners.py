"""Learners as operators name them: by ledger learner id or a prefix of it (as reports print it), and the
profile the ledger holds (PII: for the page a learner or employer reads, never for a log)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger import tables as t
from ledger.store import Ledger


def learner_ids_matching(ledger: Ledger, id_or_prefix: str) -> list[str]:
    """[the id] when a learner holds exactly `id_or_prefix`, else up to two learner ids that start with it (two:
    enough to tell a unique prefix from an ambiguous one). Every learner holds at least one identity key."""
    ids = t.learner_ids.c
    with ledger.engine.connect() as conn:
        if conn.scalar(select(ids.learner_id).where(ids.learner_id == id_or_prefix).limit(1)) is not None:
            return [id_or_prefix]
        return list(
            conn.scalars(
                select(ids.learner_id)
                .where(ids.learner_id.startswith(id_or_prefix, autoescape=True))
                .distinct()
                .limit(2)
            )
        )


def learner_profile(ledger: Ledger, learner_id: str) -> dict[str, Any]:
    """The learner's stored profile (empty when the ledger holds none)."""
    with ledger.engine.connect() as conn:
        return ledger.profiles(conn, [learner_id]).get(learner_id, {})
