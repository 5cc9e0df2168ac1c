"""Prometheus metrics as Prometheus sees them: scraped over HTTP from a running `cmesync stream`, read from the
textfile a nightly run writes, parsed with prometheus-client's own text parser, compared with the counts the
commands print and the ledger holds."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from datetime import UTC
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from deploy.sandbox.pushgateway import PushgatewaySandbox
from ledger import tables as t
from ledger.store import Ledger
from pipeline.config import ConfigError, MetricsConfig, Settings
from pipeline.metrics import sample_names
from pipeline.reports.metrics_export import serving
from pipeline.stages import nightly
from tests.ops.conftest import Ops, wait_for
from tests.ops.test_stream_cli import deliveries_by_state, stream_runs

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# Every label a metric may carry: all bounded by configuration or by our own vocabularies.
ALLOWED_LABELS = {
    "source",
    "stage",
    "reason_code",
    "outcome",
    "topic",
    "partition",
    "credit_type",
    "status",
    "registry",
    "status_class",
    "deployment",
    "le",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(port: int) -> Samples | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return parse(response.read().decode())
    except OSError:
        return None


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)


def open_dead_letters(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(
            conn.scalar(select(func.count()).select_from(t.dead_letters).where(t.dead_letters.c.resolved_at.is_(None)))
            or 0
        )


def deliveries_sent(ledger: Ledger) -> int:
    """Deliveries that went out: those still `sent`, and those sent and then superseded by a newer version of
    their record (a later batch can bring it after the pump delivered the first); the counter counts both."""
    d = t.deliveries.c
    with ledger.engine.connect() as conn:
        superseded_after_sending = conn.scalar(
            select(func.count())
            .select_from(t.deliveries)
            .where(d.state == "superseded", d.receipt.is_not(None))
        )
    return len(deliveries_by_state(ledger).get("sent", ())) + int(superseded_after_sending or 0)


def add_config(ops: Ops, text: str) -> None:
    ops.config_path.write_text(ops.config_path.read_text(encoding="utf-8") + text, encoding="utf-8")


def assert_bounded_labels(samples: Samples) -> None:
    names = {name for (_, labels) in samples for name, _ in labels}
    assert names <= ALLOWED_LABELS
    for _, labels in samples:
        for name, value in labels:
            # No record, learner or event id: those are UUIDs or long hex strings.
            assert len(value) < 40 and value.count("-") < 4, (name, value)


@pytest.mark.integration
def test_given_a_stream_serving_metrics_when_events_flow_then_its_counters_move(ops: Ops) -> None:
    port = free_port()
    ops.batch_size = 5  # several reconcile batches
    ops.write_config()
    add_config(ops, f"\n[metrics]\nport = {port}\n")
    ledger = Ledger(ops.ledger_url)
    stream = ops.start("stream", "--delivery-interval", "0.2", "--json")
    try:
        wait_for(lambda: stream_runs(ledger) == ["running"], "the stream to start")
        before = wait_for(lambda: scrape(port), "the metrics endpoint to answer")
        published = nightly.pull(Settings.load(ops.config_path), "lms-xapi").events
        wait_for(
            lambda: total(scrape(port) or {}, "cmesync_messages_reconciled_total") == published,
            "the scraped reconciled counter to reach what was published",
        )
        wait_for(lambda: not {"pending", "failed"} & set(deliveries_by_state(ledger)), "every credit to be delivered")

        def settled() -> Samples | None:
            """A scrape taken after the delivery pass that sent the last credit refreshed its gauges."""
            samples = scrape(port) or {}
            done = (
                total(samples, "cmesync_deliveries_total", outcome="sent") == deliveries_sent(ledger)
                and total(samples, "cmesync_dead_letters_open") == open_dead_letters(ledger)
                and total(samples, "cmesync_last_success_timestamp_seconds", deployment="stream") > 0
            )
            return samples if done else None

        after = wait_for(settled, "the scraped counters and gauges to reach the ledger's")
        stream.send_signal(signal.SIGTERM)
        stdout, stderr = stream.communicate(timeout=120)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.communicate()

    assert stream.returncode == 0, stderr
    assert after is not None
    counts = json.loads(stdout)
    assert total(before, "cmesync_messages_reconciled_total") == 0
    assert total(after, "cmesync_messages_reconciled_total") == counts["consumed"] == published
    assert total(after, "cmesync_messages_reconciled_total", outcome="rejected") == counts["rejected"]
    assert total(after, "cmesync_credit_versions_total") == counts["credit_versions"] > 0
    assert total(after, "cmesync_credit_versions_total", status="AWARDED") > 0
    assert total(after, "cmesync_deliveries_total", registry="ama-pra", outcome="sent") == counts["delivered"] > 0
    assert total(after, "cmesync_credits_published_total") == counts["credits_published"]
    assert total(after, "cmesync_registry_http_responses_total", registry="ama-pra", status_class="2xx") > 0
    assert total(after, "cmesync_reconcile_batch_duration_seconds_count") >= counts["batches"] > 1
    assert total(after, "cmesync_consumer_lag_messages", topic="cme.attendance.v1") == 0
    assert ("cmesync_consumer_lag_messages", frozenset({("topic", "cme.attendance.v1"), ("partition", "0")})) in after
    assert total(after, "cmesync_dead_letters_open") == open_dead_letters(ledger) > 0
    assert total(after, "cmesync_last_success_timestamp_seconds", deployment="stream") > 0
    assert {name for name, _ in after} <= sample_names()
    assert_bounded_labels(after)
    ledger.close()


@pytest.mark.integration
def test_given_a_textfile_configured_when_a_nightly_run_ends_then_the_file_parses_with_the_runs_counts(
    ops: Ops, tmp_path: Path
) -> None:
    textfile = tmp_path / "textfile" / "cmesync.prom"
    add_config(ops, f'\n[metrics]\ntextfile = "{textfile}"\n')
    run = ops.cli("run", "--json")
    assert run.returncode == 0, run.stderr
    counts = run.json()

    samples = parse(textfile.read_text(encoding="utf-8"))
    families = {family.name for family in text_string_to_metric_families(textfile.read_text(encoding="utf-8"))}
    assert {
        "cmesync_source_records_read",
        "cmesync_records_rejected",
        "cmesync_events_produced",
        "cmesync_messages_reconciled",
        "cmesync_reconcile_batch_duration_seconds",
        "cmesync_consumer_lag_messages",
        "cmesync_credit_versions",
        "cmesync_deliveries",
        "cmesync_registry_http_responses",
        "cmesync_dead_letters_open",
        "cmesync_last_success_timestamp_seconds",
    } <= families
    assert total(samples, "cmesync_source_records_read_total", source="lms-xapi") == counts["records_read"] > 0
    assert total(samples, "cmesync_events_produced_total") == counts["events_published"]
    assert total(samples, "cmesync_records_rejected_total", stage="normalise") == counts["rejected_at_normalise"]
    assert total(samples, "cmesync_records_rejected_total", stage="reconcile") == counts["rejected_at_reconcile"]
    assert total(samples, "cmesync_credit_versions_total") == counts["credit_versions"]
    assert total(samples, "cmesync_deliveries_total", registry="ama-pra", outcome="sent") == counts["delivered"]
    assert total(samples, "cmesync_consumer_lag_messages", topic="cme.attendance.v1") == 0
    with Ledger(ops.ledger_url) as ledger:
        assert total(samples, "cmesync_dead_letters_open") == open_dead_letters(ledger)
        with ledger.engine.connect() as conn:
            finished = conn.scalar(select(t.runs.c.finished_at).where(t.runs.c.flow == "nightly"))
    assert finished is not None
    assert total(samples, "cmesync_last_success_timestamp_seconds", deployment="nightly") == pytest.approx(
        (finished if finished.tzinfo else finished.replace(tzinfo=UTC)).timestamp()
    )
    assert_bounded_labels(samples)


def test_given_no_metrics_port_when_serving_then_nothing_listens() -> None:
    with serving(MetricsConfig()) as address:
        assert address is None


def test_given_a_port_in_use_when_serving_then_it_is_a_configuration_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = pytest.raises(ConfigError, match=f"metrics: cannot listen on 127.0.0.1:{port}")
        with refused, serving(MetricsConfig(port=port)):
            pass


def test_given_a_port_and_no_host_when_serving_then_it_binds_loopback_only() -> None:
    port = free_port()
    with serving(MetricsConfig(port=port)) as address:
        assert address == ("127.0.0.1", port)
        assert scrape(port) is not None
    assert scrape(port) is None


@pytest.mark.integration
def test_given_a_pushgateway_when_a_nightly_run_ends_then_it_holds_the_runs_metrics_and_a_down_one_fails_nothing(
    ops: Ops,
) -> None:
    with PushgatewaySandbox() as gateway:
        url = gateway.url
        add_config(ops, f'\n[metrics]\npushgateway = "{url}"\njob = "cmesync-nightly"\n')
        run = ops.cli("run", "--json")
        assert run.returncode == 0, run.stderr
        [(key, text)] = gateway.groups.items()
    assert key == (("job", "cmesync-nightly"),)
    samples = parse(text)
    counts = run.json()
    assert total(samples, "cmesync_source_records_read_total") == counts["records_read"] > 0
    assert total(samples, "cmesync_deliveries_total", outcome="sent") == counts["delivered"]
    assert total(samples, "cmesync_last_success_timestamp_seconds", deployment="nightly") > 0

    # The gateway is gone now: the next run still succeeds, and says the push failed.
    again = ops.cli("run", "--json")
    assert again.returncode == 0, again.stderr
    assert f"metrics: push to {url} failed" in again.stderr


@pytest.mark.integration
def test_given_the_metrics_port_is_taken_when_the_stream_starts_then_it_exits_2_naming_the_port(ops: Ops) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        add_config(ops, f"\n[metrics]\nport = {port}\n")
        stream = ops.cli("stream", timeout_s=120)
    assert stream.returncode == 2, stream.stderr
    # The last line is the CLI's one-line verdict (Prefect logs the failed flow run above it, as for any failure).
    assert f"configuration error: metrics: cannot listen on 127.0.0.1:{port}" in stream.stderr.splitlines()[-1]
