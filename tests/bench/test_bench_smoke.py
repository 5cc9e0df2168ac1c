"""The benchmark's own accounting at 10k events: every generated statement is accounted for. Speed is
printed by `python -m bench`, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.generate import statements
from bench.run import LEDGERS

pytestmark = pytest.mark.integration

EVENTS = 10_000


@pytest.mark.parametrize("ledger", LEDGERS)
def test_given_10k_generated_statements_when_the_benchmark_runs_then_its_counts_add_up(
    tmp_path: Path, ledger: str, prefect_harness: None
) -> None:
    from prefect.settings import PREFECT_API_URL

    generated = statements(EVENTS, seed=7)
    voided = {s["object"]["id"] for s in generated if s.get("verb", {}).get("id", "").endswith("/voided")}
    served = [s for s in generated if s["id"] not in voided]  # an LRS never returns voided statements
    without_actor = [s for s in served if "actor" not in s]

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--events",
            str(EVENTS),
            "--seed",
            "7",
            "--workdir",
            str(tmp_path),
            "--ledger",
            ledger,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        # The session's Prefect server (a temporary one costs ~15 s to start here); its own Prefect home.
        env={
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
        },
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    counts = result["counts"]
    assert result["ledger"] == ledger

    assert counts["records_read"] == len(served)
    assert counts["rejected_at_normalise"] == len(without_actor)
    assert counts["events_published"] == len(served) - len(without_actor) == result["consumed"]
    assert counts["credits_published"] == counts["credit_versions"] > 0
    assert counts["delivered"] + counts["delivery_failed"] <= counts["credit_versions"]
    assert counts["delivery_failed"] == 0
    assert set(result["stage_s"]) >= {"pull", "reconcile", "publish", "deliver"}
    assert result["reference_produce_per_s"] > 0 and result["peak_rss_mb"] > 0
    # The floor moves every generated statement once and publishes one credit row per batch and pair touched.
    assert result["floor_events"] == EVENTS
    assert 0 < result["floor_credits"] <= EVENTS
    assert result["ratio_to_floor"] == result["end_to_end_per_s"] / result["floor_per_s"]
