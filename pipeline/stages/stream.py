"""The long-running consumer: reconcile cme.attendance.v1 continuously and keep the credit stream and the
registries up to date (DESIGN §1, §9, §10).

Two loops, each with its own clients (kafka-python clients are not thread-safe):
- the poll loop (the caller's thread) takes at most `batch_size` messages per poll, reconciles them into the
  ledger in one transaction and only then commits their offsets — per-poll work stays bounded;
- the delivery pump (a background thread) publishes the outbox and delivers pending credits to every registry
  whenever the poll loop has committed something, or every `delivery_interval_s`. Slow registries therefore
  never hold up polling.

Stopping (`stop` set, e.g. by SIGTERM): the poll loop finishes the batch in hand — reconciled and committed —
and exits; the pump finishes the pass in hand, makes one last pass for what the final batches produced, and
exits. Nothing consumed is left uncommitted-but-applied or applied-but-lost; whatever remains pending is
picked up by the next start or the next nightly run.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from types import FrameType

from ledger.run_lock import RunLocked, run_lock
from ledger.store import Ledger, utcnow
from pipeline import metrics
from pipeline.catalog import fetch_catalog
from pipeline.config import Settings
from pipeline.factory import build_registries, codec_for
from pipeline.kafka.interface import Consumer, ConsumerStalled
from pipeline.kafka.io import make_consumer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.reports.metrics_export import refresh_from_ledger
from pipeline.stages import nightly
from pipeline.stages.reconcile import IntakeStats, offsets_of, reconcile_messages, redecide_unknown_professions

log = logging.getLogger(__name__)


@dataclass
class StreamStats:
    batches: int = 0
    consumed: int = 0
    duplicates: int = 0
    rejected: int = 0
    credit_versions: int = 0
    credits_published: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    pump_errors: int = 0

    def add_intake(self, intake: IntakeStats) -> None:
        self.batches += 1
        self.consumed += intake.consumed
        self.duplicates += intake.duplicates
        self.rejected += intake.rejected
        self.credit_versions += intake.credit_versions

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class DeliveryPump(threading.Thread):
    """Publishes the outbox and delivers to every registry, outside the poll loop."""

    def __init__(self, settings: Settings, stats: StreamStats, interval_s: float) -> None:
        super().__init__(name="cmesync-delivery-pump", daemon=True)
        self.run_id = f"stream-{uuid.uuid4()}"  # names this stream as the lock's holder during its passes
        self.settings = settings
        self.stats = stats
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ask for one last pass, then the end; returns at once (join to wait)."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            last = self._stopping.is_set()
            self.one_pass()
            if last:
                return

    def one_pass(self) -> None:
        try:
            # A nightly run or a replay delivers too: while one holds the ledger, this pass waits for the next.
            with run_lock(self.settings.ledger_url, self.run_id, "stream delivery pass"):
                credits, _ = nightly.publish(self.settings)
                delivered = failed = 0
                for registry in self.settings.registries:
                    result = nightly.deliver(self.settings, registry.name)
                    delivered += result.delivered
                    failed += result.failed
                # The dead letters of failed deliveries, and credit versions reconciled since the first publish.
                credits += nightly.publish(self.settings)[0]
        except RunLocked as err:
            log.info("delivery pass deferred: %s", err)
            return
        except Exception as err:
            # A broker or ledger hiccup must not end the stream: the work stays in the outbox and the pending
            # deliveries, and the next pass takes it up. Only the type is logged (messages can quote data).
            with self._lock:
                self.stats.pump_errors += 1
            log.error("delivery pass failed: %s; retrying in %.0f s", type(err).__name__, self.interval_s)
            return
        metrics.set_last_success("stream", utcnow())
        with self._lock:
            self.stats.credits_published += credits
            self.stats.delivered += delivered
            self.stats.delivery_failed += failed
        if credits or delivered or failed:
            log.info("delivery pass: %d credit versions published, %d delivered, %d failed", credits, delivered, failed)
        self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        """Open dead letters and last runs from the ledger, for the metrics endpoint; a failure only logs."""
        try:
            with Ledger(self.settings.ledger_url) as ledger:
                refresh_from_ledger(ledger)
        except Exception as err:
            log.warning("metrics: ledger gauges not refreshed: %s", type(err).__name__)


def stream_consumer(settings: Settings) -> Consumer:
    """The poll loop's consumer on the configured backend (`kafka_backend`), with the configured security."""
    return make_consumer(
        settings.kafka_bootstrap,
        ATTENDANCE_TOPIC,
        settings.consumer_group,
        settings.batch_size,
        backend=settings.kafka_backend,
        security=settings.kafka_security,
    )


def run_stream(
    settings: Settings,
    stop: threading.Event,
    *,
    delivery_interval_s: float = 5.0,
    idle_wait_s: float = 0.5,
    on_batch: Callable[[StreamStats], None] | None = None,
) -> StreamStats:
    """Consume until `stop` is set; return what was done."""
    stats = StreamStats()
    with Ledger(settings.ledger_url) as ledger:
        consumer = stream_consumer(settings)
        codec = codec_for(settings, "attendance_event")
        catalog = fetch_catalog(settings)
        registries = build_registries(settings)
        professions = settings.professions.mapping()
        pump = DeliveryPump(settings, stats, delivery_interval_s)
        pump.start()
        try:
            # Held pairs first: the profession mapping may have learnt their code since the last run.
            held = redecide_unknown_professions(codec, ledger, catalog, registries, professions)
            stats.credit_versions += held.credit_versions
            while not stop.is_set():
                try:
                    for batch in consumer.batches():
                        intake = reconcile_messages(
                            batch,
                            codec,
                            ledger,
                            catalog,
                            registries,
                            professions=professions,
                            commit_offsets=offsets_of(consumer, batch),
                        )
                        metrics.set_consumer_lag(ATTENDANCE_TOPIC, consumer.lag_by_partition())
                        stats.add_intake(intake)
                        pump.wake()
                        if on_batch:
                            on_batch(stats)
                        if stop.is_set():
                            break
                except ConsumerStalled as err:
                    log.warning("%s; polling on", err)  # a long-running consumer outlives a broker stall
                metrics.set_consumer_lag(ATTENDANCE_TOPIC, consumer.lag_by_partition())
                stop.wait(idle_wait_s)
        finally:
            consumer.close()
            pump.stop()
            pump.join()
    log.info("stream stopped: %s", stats.counts())
    return stats


@contextlib.contextmanager
def stop_on_signals(
    stop: threading.Event, signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into `stop` for the duration, then restore the previous handlers. Signals can only be
    handled on the main thread; elsewhere this is a no-op and the caller must set `stop` itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
