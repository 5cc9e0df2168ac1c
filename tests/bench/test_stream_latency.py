"""The stream latency bench on a tiny setting: it runs, accounts for every event it produced and prints its
figures. The figures themselves are printed by `python -m bench --stream-latency`, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.generate import statements

pytestmark = pytest.mark.integration

RATE = 50
DURATION_S = 3


def test_given_a_tiny_rate_when_the_stream_latency_bench_runs_then_every_event_is_accounted_for_and_figures_print(
    tmp_path: Path, prefect_harness: None
) -> None:
    from prefect.settings import PREFECT_API_URL

    generated = statements(RATE * DURATION_S + RATE, seed=7)  # the bench's data: measured events plus warm-up
    voided = {s["object"]["id"] for s in generated if s.get("verb", {}).get("id", "").endswith("/voided")}
    events = [s for s in generated if s["id"] not in voided and "actor" in s]

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.stream_latency",
            "--duration",
            str(DURATION_S),
            "--rate",
            str(RATE),
            "--settle",
            "2",
            "--delivery-interval",
            "0.5",
            "--workdir",
            str(tmp_path),
            "--json",
            str(tmp_path / "latency.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        # The session's Prefect server, not a temporary one of the bench's own (~15 s to start here).
        env={
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "COLUMNS": "200",
        },
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert json.loads((tmp_path / "latency.json").read_text()) == result

    assert result["stream_caught_up"] and result["stream_exit"] == 0
    assert result["events_produced"] == len(events) - RATE  # the warm-up second is not timed
    assert result["events_with_credit"] + result["events_without_credit"] == result["events_produced"]
    assert result["events_with_credit"] > 0
    counts = result["stream_counts"]
    assert counts["consumed"] == len(events)
    assert counts["credits_published"] == counts["credit_versions"] > 0
    assert counts["pump_errors"] == 0
    assert result["p50_s"] <= result["p99_s"] <= result["max_s"]
    for label in ("p50 (s)", "p99 (s)", "max (s)", "events timed"):
        assert label in completed.stdout
