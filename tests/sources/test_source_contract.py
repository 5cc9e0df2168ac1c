"""The contract every source connector passes, run against each one through its harness (conftest.py):
a full pull, an incremental pull, a pull killed between pages and rerun, a pull through injected faults,
and bad input dead-lettered with stable reason codes and source positions. Real sandboxes over HTTP (or
real files), the real pull stage, a real broker and both ledger databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.sandbox.base import Faults

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[2]
PULL_IN_SUBPROCESS = (
    "import json, sys\n"
    "from pipeline.stages import nightly\n"
    "from pipeline.config import Settings\n"
    "nightly.pull(Settings(**json.loads(open(sys.argv[1]).read())), sys.argv[2])\n"
)
OVER_HTTP = ["xapi", "webinar", "csv_drop-http", "provider_rest-cursor", "provider_rest-page"]


def keys(harness: Any, events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(harness.key(event) for event in events if event["kind"] != "VOIDED") + Counter(
        event["event_id"] for event in events if event["kind"] == "VOIDED"
    )


def test_given_seeded_source_when_pulled_then_the_topic_holds_each_expected_event_once(
    harness: Any, pipeline_for: Callable[[Any], Any]
) -> None:
    expected = harness.seed()
    pipeline = pipeline_for(harness.config())

    stats = pipeline.pull()

    events = pipeline.topic_events()
    assert keys(harness, events) == Counter(expected)
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(e["source"] == harness.name and e["source_ref"] for e in events)
    assert stats.events == len(expected)
    assert pipeline.dead_letters() == {}
    assert pipeline.checkpoint() is not None


def test_given_pulled_source_when_new_records_arrive_then_the_next_pull_publishes_only_those(
    harness: Any, pipeline_for: Callable[[Any], Any]
) -> None:
    harness.seed()
    pipeline = pipeline_for(harness.config())
    pipeline.pull()
    before = len(pipeline.topic_events())

    new = harness.add_more()
    pipeline.pull()
    pipeline.pull()  # nothing new: publishes nothing

    assert keys(harness, pipeline.topic_events()[before:]) == Counter(new)


@pytest.mark.parametrize("harness", OVER_HTTP, indirect=True)
@pytest.mark.dialect
def test_given_pull_killed_between_pages_when_rerun_then_nothing_is_lost_and_the_ledger_has_no_duplicates(
    harness: Any, pipeline_for: Callable[[Any], Any], tmp_path: Path
) -> None:
    expected = harness.seed()
    pipeline = pipeline_for(harness.config())
    harness.server.faults = Faults(slow=1.0, slow_s=0.4)
    process = subprocess.Popen(
        [sys.executable, "-c", PULL_IN_SUBPROCESS, str(pipeline.dump(tmp_path / "settings.json")), harness.name],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while pipeline.checkpoint() is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    killed_at = pipeline.checkpoint()

    harness.server.faults = Faults()
    pipeline.pull()
    pipeline.reconcile()

    assert process.returncode == -signal.SIGKILL
    assert killed_at is not None and killed_at != pipeline.checkpoint()
    assert set(keys(harness, pipeline.topic_events())) == expected
    in_ledger = pipeline.ledger_event_ids()
    assert len(in_ledger) == len(set(in_ledger)) == len(expected)


@pytest.mark.parametrize("harness", OVER_HTTP, indirect=True)
def test_given_faults_on_30_percent_of_requests_when_pulled_then_exactly_the_expected_events(
    harness: Any, pipeline_for: Callable[[Any], Any]
) -> None:
    expected = harness.seed()
    pipeline = pipeline_for(harness.config())
    harness.server.faults = Faults(
        rate_limited=0.1, retry_after_s=0.01, server_error=0.1, dropped=0.05, slow=0.05, slow_s=0.05, seed=30
    )

    pipeline.pull()

    assert keys(harness, pipeline.topic_events()) == Counter(expected)
    assert pipeline.dead_letters() == {}


def test_given_bad_input_when_pulled_then_each_record_is_dead_lettered_with_its_reason_and_position(
    harness: Any, pipeline_for: Callable[[Any], Any]
) -> None:
    good = harness.seed()
    bad = harness.add_bad()
    pipeline = pipeline_for(harness.config())

    stats = pipeline.pull()

    assert pipeline.dead_letters() == bad
    assert stats.rejected == len(bad)
    published = keys(harness, pipeline.topic_events())
    assert set(good) <= set(published)
    assert all(count == 1 for count in published.values())
