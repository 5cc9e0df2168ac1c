"""The long-running consumer: reconcile cme.attendance.v1 continuously and keep the credit stream and the
registries up to date (DESIGN §1, §9, §10).

Three loops, each with its own clients (kafka-python clients are not thread-safe):
- the poll loop (the caller's thread) takes at most `batch_size` messages per poll, reconciles them into the
  ledger in one transaction and only then commits their offsets — per-poll work stays bounded;
- the outbox publisher (a background thread, one ledger and one producer for the life of the stream) puts
  the credit versions and dead letters of each committed batch onto Kafka as soon as the poll loop says so;
- the delivery pump (another background thread) delivers pending credits to every registry whenever the poll
  loop has committed something, or every `delivery_interval_s`. A slow or unreachable registry therefore holds
  up neither polling nor the credit stream.

The publisher and the pump both write what the nightly run writes, so both work under the ledger's run lock:
taken once for the stream (`StreamRunLock`) whichever of them needs it, so neither waits for the other, and
refused, as before, while a nightly run or a replay holds it (the work waits for the next wake-up).

Stopping (`stop` set, e.g. by SIGTERM): the poll loop finishes the batch in hand — reconciled and committed —
and exits; the pump finishes the pass in hand, makes one last pass for what the final batches produced, and
exits; then the publisher publishes what remains (the final batches' credits, the pump's dead letters) and
exits. Nothing consumed is left uncommitted-but-applied or applied-but-lost; whatever remains pending is
picked up by the next start or the next nightly run.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from types import FrameType
from typing import TypeVar

from ledger.run_lock import RunLocked, run_lock
from ledger.store import Ledger, utcnow
from pipeline import metrics
from pipeline.catalog import fetch_catalog
from pipeline.config import Settings
from pipeline.factory import build_registries, codec_for
from pipeline.kafka.interface import Consumer, ConsumerStalled
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.reports.metrics_export import refresh_from_ledger
from pipeline.stages import nightly
from pipeline.stages.reconcile import IntakeStats, offsets_of, reconcile_messages, redecide_unknown_professions

log = logging.getLogger(__name__)

_T = TypeVar("_T")


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


class StreamRunLock:
    """The ledger's run lock on behalf of the whole stream: the first of its threads to need it takes it, the
    others share it, the last to finish releases it. The publisher thus never waits for a delivery pass of its
    own stream, while a nightly run, a replay or another stream still finds the ledger held and is refused."""

    def __init__(self, ledger_url: str) -> None:
        self.ledger_url = ledger_url
        self.run_id = f"stream-{uuid.uuid4()}"  # names this stream as the lock's holder
        self._mutex = threading.Lock()
        self._users = 0
        self._held: contextlib.ExitStack | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the run lock for the duration, or raise RunLocked at once (another writer holds it)."""
        with self._mutex:
            if self._users == 0:
                stack = contextlib.ExitStack()
                stack.enter_context(run_lock(self.ledger_url, self.run_id, "stream"))
                self._held = stack
            self._users += 1
        try:
            yield
        finally:
            with self._mutex:
                self._users -= 1
                if self._users == 0 and self._held is not None:
                    self._held.close()
                    self._held = None


class _WokenLoop(threading.Thread, abc.ABC):
    """A background loop that runs `one_pass` when woken or every `interval_s`, and once more when stopped."""

    def __init__(
        self, name: str, stats: StreamStats, stats_lock: threading.Lock, lock: StreamRunLock, interval_s: float
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.lock = lock  # shared by the stream's loops: neither waits for the other, other writers wait for both
        self.stats = stats
        self._stats_lock = stats_lock  # both loops add to the same counters
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()

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

    @abc.abstractmethod
    def one_pass(self) -> None:
        """One publishing or delivery pass; failures are its own to log and count, never the thread's end."""

    def _under_lock(self, what: str, work: Callable[[], _T]) -> _T | None:
        """`work` under the stream's run lock; None when another writer holds the ledger or `work` failed.

        A nightly run or a replay publishes and delivers too: while one holds the ledger, the pass waits for the
        next wake-up. A broker, ledger or registry hiccup must not end the stream: the work stays in the outbox
        or the delivery queue for the next pass, which follows the next batch or `interval_s`. Only the error's
        type is logged (messages can quote data)."""
        try:
            with self.lock.held():
                return work()
        except RunLocked as err:
            log.info("%s deferred: %s", what, err)
        except Exception as err:
            with self._stats_lock:
                self.stats.pump_errors += 1
            log.error("%s failed: %s; retrying in %.1f s", what, type(err).__name__, self.interval_s)
        return None


class OutboxPump(_WokenLoop):
    """Publishes the outbox (credit versions, dead letters) right after each committed batch, through one
    ledger and one producer for the life of the stream."""

    def __init__(
        self,
        settings: Settings,
        stats: StreamStats,
        stats_lock: threading.Lock,
        lock: StreamRunLock,
        interval_s: float,
    ) -> None:
        super().__init__("cmesync-outbox-publisher", stats, stats_lock, lock, interval_s)
        # Opened here, in the caller's thread, so a broker or ledger that is not there fails the start.
        self.ledger = Ledger(settings.ledger_url)
        try:
            self.producer = make_producer(
                settings.kafka_bootstrap, backend=settings.kafka_backend, security=settings.kafka_security
            )
        except Exception:
            self.ledger.close()
            raise
        self.publisher = nightly.OutboxPublisher(settings, self.ledger, self.producer)

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.producer.close()
            self.ledger.close()

    def one_pass(self) -> None:
        published = self._under_lock("publishing", self.publisher.publish)
        if published is None:
            return
        credits, dead = published
        with self._stats_lock:
            self.stats.credits_published += credits
        if credits or dead:
            log.debug("published %d credit versions, %d dead letters", credits, dead)


class DeliveryPump(_WokenLoop):
    """Delivers to every registry, outside the poll loop and apart from publishing: its passes may take as long
    as the registries' round trips do."""

    def __init__(
        self,
        settings: Settings,
        stats: StreamStats,
        stats_lock: threading.Lock,
        lock: StreamRunLock,
        outbox: OutboxPump,
        interval_s: float,
    ) -> None:
        super().__init__("cmesync-delivery-pump", stats, stats_lock, lock, interval_s)
        self.settings = settings
        self.outbox = outbox

    def _deliver_all(self) -> tuple[int, int]:
        delivered = failed = 0
        for registry in self.settings.registries:
            result = nightly.deliver(self.settings, registry.name)
            delivered += result.delivered
            failed += result.failed
        return delivered, failed

    def one_pass(self) -> None:
        try:
            outcome = self._under_lock("delivery pass", self._deliver_all)
        finally:
            self.outbox.wake()  # the dead letters of failed deliveries go onto their topic
        if outcome is None:
            return
        delivered, failed = outcome
        metrics.set_last_success("stream", utcnow())
        with self._stats_lock:
            self.stats.delivered += delivered
            self.stats.delivery_failed += failed
        if delivered or failed:
            log.info("delivery pass: %d delivered, %d failed", delivered, failed)
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
    idle_wait_s: float = 0.05,
    on_batch: Callable[[StreamStats], None] | None = None,
) -> StreamStats:
    """Consume until `stop` is set; return what was done. `idle_wait_s` is the pause after a poll that found
    nothing new: short, since the poll itself already waits for the broker, and every event arriving meanwhile
    waits for it."""
    stats = StreamStats()
    stats_lock = threading.Lock()
    lock = StreamRunLock(settings.ledger_url)
    with Ledger(settings.ledger_url) as ledger:
        consumer = stream_consumer(settings)
        try:
            outbox = OutboxPump(settings, stats, stats_lock, lock, delivery_interval_s)
        except Exception:
            consumer.close()
            raise
        pump = DeliveryPump(settings, stats, stats_lock, lock, outbox, delivery_interval_s)
        outbox.start()
        pump.start()
        try:
            codec = codec_for(settings, "attendance_event")
            catalog = fetch_catalog(settings)
            registries = build_registries(settings)
            professions = settings.professions.mapping()
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
                        # The batch and its offsets are committed: its credits and deliveries can go.
                        outbox.wake()
                        pump.wake()
                        metrics.set_consumer_lag(ATTENDANCE_TOPIC, consumer.lag_by_partition())
                        stats.add_intake(intake)
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
            # Deliveries first: the publisher's last pass then takes the dead letters of their last pass too.
            pump.stop()
            pump.join()
            outbox.stop()
            outbox.join()
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
