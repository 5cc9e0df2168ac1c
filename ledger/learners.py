"""Learners as operators name them: by ledger learner id or a prefix of it (as reports print it), and the
profile the ledger holds (PII: for the page a learner or employer reads, never for a log), written by the
reconcile batch."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from ledger import tables as t
from ledger.bulk import upsert
from ledger.store import Ledger, utcnow


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


def store_profiles(conn: Connection, profiles: Mapping[str, Mapping[str, Any]]) -> None:
    """Insert new learners' profiles, update the ones whose text changed, leave the rest alone: one upsert
    whose update is conditional, instead of reading the stored profiles back first (caller's transaction)."""
    now = utcnow()
    rows = [
        {"learner_id": learner_id, "profile": json.dumps(profile, sort_keys=True), "updated_at": now}
        for learner_id, profile in profiles.items()
    ]
    upsert(
        conn,
        t.learners,
        rows,
        ("learner_id",),
        update=lambda excluded: {"profile": excluded.profile, "updated_at": excluded.updated_at},
        where=lambda excluded: t.learners.c.profile != excluded.profile,
    )
