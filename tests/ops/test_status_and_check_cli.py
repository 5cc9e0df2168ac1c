"""`cmesync status` (consumer lag against the true end of the topic) and `cmesync config check`."""

from __future__ import annotations

import pytest

from pipeline.kafka.interface import publish
from pipeline.kafka.io import make_producer
from pipeline.kafka.lag import consumer_lag
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from tests.ops.conftest import Ops

pytestmark = pytest.mark.integration


def publish_in_batches(bootstrap: str, sizes: tuple[int, ...]) -> int:
    """Publish opaque messages in separately flushed batches, so the log ends in a batch of several records."""
    producer = make_producer(bootstrap)
    try:
        for n, size in enumerate(sizes):
            publish(producer, ATTENDANCE_TOPIC, [(None, f"batch {n} message {i}".encode()) for i in range(size)])
    finally:
        producer.close()
    return sum(sizes)


def test_given_unconsumed_messages_when_measuring_lag_then_it_counts_to_the_true_end_of_the_partition(
    kafka_bootstrap: str,
) -> None:
    # Tansu answers ListOffsets(latest) with the last batch's base offset (4 here), not the end (7).
    published = publish_in_batches(kafka_bootstrap, (4, 3))

    lag = consumer_lag(kafka_bootstrap, "reconciler")

    assert [(p.topic, p.partition, p.committed, p.end, p.lag) for p in lag] == [
        (ATTENDANCE_TOPIC, 0, None, published, published)
    ]


def test_given_events_waiting_on_the_topic_when_status_runs_then_it_reports_their_lag_and_an_empty_ledger(
    ops: Ops,
) -> None:
    published = publish_in_batches(ops.kafka_bootstrap, (5, 2, 3))

    status = ops.cli("status", "--json")

    assert status.returncode == 0, status.stderr
    report = status.json()
    assert [(p["topic"], p["lag"]) for p in report["consumer_lag"]] == [(ATTENDANCE_TOPIC, published)]
    assert report["runs"] == [] and report["deliveries"] == {}
    assert report["oldest_unresolved_dead_letter"] is None
    human = ops.cli("status")
    assert human.returncode == 0 and "consumer lag" in human.stdout and ATTENDANCE_TOPIC in human.stdout


def test_given_everything_reachable_when_checking_the_config_then_every_component_is_ok(ops: Ops) -> None:
    result = ops.cli("config", "check", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = {r["component"]: r["outcome"] for r in result.json()}
    assert outcomes == {
        "ledger": "ok",
        "catalog": "ok",
        "kafka": "ok",
        "schema registry": "ok",
        "source lms-xapi": "ok",
        "registry ama-pra": "ok",
    }


def test_given_a_wrong_registry_token_when_checking_the_config_then_that_registry_fails_with_the_reason(
    ops: Ops,
) -> None:
    ops.ama_token = "not-the-token"
    ops.write_config()

    result = ops.cli("config", "check", "--json")

    assert result.returncode == 1
    checks = {r["component"]: r for r in result.json()}
    assert checks["registry ama-pra"]["outcome"] == "failed"
    assert "credentials refused" in checks["registry ama-pra"]["detail"]
    assert "not-the-token" not in result.stdout + result.stderr
    assert checks["source lms-xapi"]["outcome"] == "ok"


def test_given_a_config_with_an_unknown_setting_when_checked_then_exit_code_2_names_it(ops: Ops) -> None:
    text = ops.config_path.read_text(encoding="utf-8")
    ops.config_path.write_text("nightly_hour = 3\n" + text, encoding="utf-8")

    result = ops.cli("config", "check")

    assert result.returncode == 2
    assert "nightly_hour" in result.stderr


def test_given_empty_endpoints_when_checking_the_config_then_they_are_reported_as_skipped(ops: Ops) -> None:
    ops.config_path.write_text(f'ledger_url = "{ops.ledger_url}"\n', encoding="utf-8")

    result = ops.cli("config", "check", "--json")

    assert result.returncode == 0, result.stderr
    outcomes = {r["component"]: r["outcome"] for r in result.json()}
    assert outcomes == {"ledger": "ok", "catalog": "ok", "kafka": "skipped", "schema registry": "skipped"}
