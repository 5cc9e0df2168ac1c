"""The nightly registry diff's report, per run and registry (table `registry_diffs`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ledger import tables as t
from ledger.bulk import upsert
from ledger.store import Ledger, utcnow


def save_registry_diff(
    ledger: Ledger, run_id: str, registry: str, counts: Mapping[str, int], record_ids: Mapping[str, Sequence[str]]
) -> None:
    """Store (or, when a run repeats the diff, replace) one registry's diff report for the run."""
    values = {
        "created_at": utcnow(),
        "counts": json.dumps(dict(counts), sort_keys=True),
        "record_ids": json.dumps({k: sorted(v) for k, v in record_ids.items()}, sort_keys=True),
    }
    with ledger.transaction() as conn:
        upsert(conn, t.registry_diffs, [{"run_id": run_id, "registry": registry, **values}], ("run_id", "registry"))
