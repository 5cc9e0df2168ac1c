"""How the metrics leave the process (`pipeline/metrics.py` holds them): the stream serves them over HTTP, a
nightly run writes a node-exporter textfile or pushes to a Pushgateway at its end. Gauges that describe the
ledger and the broker rather than this process's work are read from them just before a run's export."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import push_to_gateway, start_http_server, write_to_textfile

from ledger.queries import last_finished_runs, unresolved_dead_letter_counts
from ledger.store import Ledger
from pipeline import metrics
from pipeline.config import ConfigError, MetricsConfig, Settings
from pipeline.kafka.lag import consumer_lag
from pipeline.kafka.security import kafka_python_options
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.outcome import SUCCEEDED

log = logging.getLogger(__name__)


@contextlib.contextmanager
def serving(config: MetricsConfig) -> Iterator[tuple[str, int] | None]:
    """Serve /metrics on `config.port` (if set) for the duration; yields the address bound, or None."""
    if config.port is None:
        yield None
        return
    try:
        server, thread = start_http_server(config.port, addr=config.host, registry=metrics.REGISTRY)
    except OSError as err:
        raise ConfigError(f"metrics: cannot listen on {config.host}:{config.port}: {err.strerror or err}") from None
    log.info("metrics on http://%s:%d/metrics", config.host, config.port)
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def refresh_from_ledger(ledger: Ledger) -> None:
    """Open dead letters, and the last successful run of each flow (the runs table outlives any process)."""
    metrics.set_dead_letters_open(unresolved_dead_letter_counts(ledger))
    for flow, finished_at in last_finished_runs(ledger, [SUCCEEDED]).items():
        metrics.set_last_success(flow, finished_at)


def refresh_consumer_lag(settings: Settings) -> None:
    lag = consumer_lag(
        settings.kafka_bootstrap, settings.consumer_group, options=kafka_python_options(settings.kafka_security)
    )
    metrics.set_consumer_lag(ATTENDANCE_TOPIC, {p.partition: p.lag for p in lag if p.topic == ATTENDANCE_TOPIC})


def export_run(settings: Settings) -> None:
    """At the end of a run, successful or not: refresh the ledger and broker gauges, then write the textfile
    and/or push. A failure here is logged, not raised: metrics never change a run's outcome."""
    config = settings.metrics
    if config.textfile is None and not config.pushgateway:
        return
    try:
        with Ledger(settings.ledger_url) as ledger:
            refresh_from_ledger(ledger)
        refresh_consumer_lag(settings)
    except Exception as err:
        log.error("metrics: ledger or broker gauges not refreshed: %s", type(err).__name__)
    if config.textfile is not None:
        try:
            config.textfile.parent.mkdir(parents=True, exist_ok=True)
            # Written beside and renamed into place, so node-exporter never reads half a file.
            write_to_textfile(str(config.textfile), metrics.REGISTRY)
            log.info("metrics written to %s", config.textfile)
        except OSError as err:
            log.error("metrics: textfile %s not written: %s", config.textfile, err)
    if config.pushgateway:
        try:
            push_to_gateway(config.pushgateway, job=config.job, registry=metrics.REGISTRY, timeout=10)
            log.info("metrics pushed to %s (job %s)", config.pushgateway, config.job)
        except Exception as err:
            log.error("metrics: push to %s failed: %s", config.pushgateway, type(err).__name__)
