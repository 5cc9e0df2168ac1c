"""One row per flow run (table `runs`): started as running, finished with its status and counts. The reads
(recent runs, a run by id or prefix, the last finished per flow) are in ledger/queries.py."""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import insert, update

from ledger import tables as t
from ledger.store import Ledger, utcnow


def start_run(ledger: Ledger, run_id: str, flow: str) -> None:
    with ledger.transaction() as conn:
        conn.execute(insert(t.runs).values(run_id=run_id, flow=flow, started_at=utcnow(), status="running"))


def finish_run(ledger: Ledger, run_id: str, status: str, counts: Mapping[str, int]) -> None:
    with ledger.transaction() as conn:
        conn.execute(
            update(t.runs)
            .where(t.runs.c.run_id == run_id)
            .values(finished_at=utcnow(), status=status, counts=json.dumps(dict(counts), sort_keys=True))
        )
