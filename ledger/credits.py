"""Credit records: the reconcile batch's write of new versions (with their learners, outbox rows and
deliveries), and the read-side queries beyond the batch's own: the latest published version of each record (to
rebuild `cme.credits.v1`) and each learner's awarded credits (transcripts, certificates)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from ledger import tables as t
from ledger.bulk import insert_rows
from ledger.deliveries import queue_deliveries
from ledger.learners import store_profiles
from ledger.store import Ledger, chunks, latest_credit_versions, record_from_json, record_to_json, utcnow
from reconcile.merge import CreditState
from reconcile.vocabulary import AWARDED


def store_credits(
    conn: Connection,
    profiles: Mapping[str, Mapping[str, Any]],
    credits: Sequence[tuple[CreditState, Mapping[str, Any]]],
    deliveries: Sequence[tuple[str, int, str]],
) -> None:
    """Learner profiles, new credit versions (with their records), their outbox rows and deliveries, in the
    caller's transaction. Every table is written with one statement: statements built per row cost more than
    the reconciliation itself (profiled in the benchmark)."""
    now = utcnow()
    store_profiles(conn, profiles)
    insert_rows(
        conn,
        t.credits,
        [
            {
                "record_id": s.record_id,
                "version": s.version,
                "status": s.status,
                "learner_id": s.learner_id,
                "activity_id": s.activity_id,
                "credit_type": s.credit_type,
                "amount": s.amount,
                "completed_on": s.completed_on,
                "record": record_to_json(record),
                "reconciled_at": record["reconciled_at"],
            }
            for s, record in credits
        ],
    )
    insert_rows(
        conn, t.outbox, [{"record_id": s.record_id, "version": s.version, "created_at": now} for s, _ in credits]
    )
    queue_deliveries(conn, deliveries, now)


def latest_published(ledger: Ledger, since: datetime | None, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Batches of each record's latest published version, by record id; `since`: reconciled at or after."""
    c, o = t.credits.c, t.outbox.c
    latest = (
        select(o.record_id, func.max(o.version).label("version"))
        .where(o.published_at.is_not(None))
        .group_by(o.record_id)
        .subquery()
    )
    query = select(c.record_id, c.record).join(
        latest, (c.record_id == latest.c.record_id) & (c.version == latest.c.version)
    )
    if since is not None:
        query = query.where(c.reconciled_at >= since)
    after = ""
    while True:
        with ledger.engine.connect() as conn:
            rows = conn.execute(query.where(c.record_id > after).order_by(c.record_id).limit(batch_size)).all()
        if not rows:
            return
        after = rows[-1].record_id
        yield [record_from_json(r.record) for r in rows]


@dataclass(frozen=True)
class AwardedCredit:
    record_id: str
    activity_id: str
    activity_title: str  # the record's title, else its activity id
    credit_type: str
    amount: Decimal
    completed_on: date


def awarded_by_learner(ledger: Ledger, learner_ids: Iterable[str]) -> dict[str, list[AwardedCredit]]:
    """Per learner, the latest version of each of their credit records when it is AWARDED."""
    c = t.credits.c
    awarded: dict[str, list[AwardedCredit]] = defaultdict(list)
    with ledger.engine.connect() as conn:
        for chunk in chunks(sorted(set(learner_ids))):
            rows = conn.execute(
                select(c.record_id, c.learner_id, c.activity_id, c.credit_type, c.amount, c.completed_on, c.record)
                .join(*latest_credit_versions(c.learner_id.in_(chunk)))
                .where(c.status == AWARDED)
            )
            for r in rows:
                awarded[r.learner_id].append(
                    AwardedCredit(
                        r.record_id,
                        r.activity_id,
                        str(json.loads(r.record).get("activity_title") or r.activity_id),
                        r.credit_type,
                        Decimal(r.amount).quantize(Decimal("0.01")),
                        r.completed_on,
                    )
                )
    return dict(awarded)
