"""The nightly run's stages as plain functions over `Settings`: each opens the clients it needs and closes
them, so a Prefect task can wrap it without passing unhashable clients around (DESIGN §10)."""

from __future__ import annotations

from collections.abc import Callable

from ledger.registry_diffs import save_registry_diff
from ledger.store import Ledger, awarded_credits
from ledger.watermarks import prune_pages
from pipeline.catalog import fetch_catalog
from pipeline.config import Settings
from pipeline.factory import build_registries, build_sources, codec_for
from pipeline.kafka.interface import Producer
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.security import kafka_python_options
from pipeline.kafka.topics import ATTENDANCE_TOPIC, ensure_topics
from pipeline.stages.broker_loss import Assessment, apply_recovery, assess
from pipeline.stages.deliver import DeliveryStats, deliver_with_retries
from pipeline.stages.publish import publish_credits, publish_dead_letters
from pipeline.stages.pull import PullStats, pull_source
from pipeline.stages.reconcile import IntakeStats, reconcile_topic
from pipeline.stages.registry_diff import diff_and_repair
from pipeline.stages.republish import republish_credits


def prepare(settings: Settings) -> None:
    """Ledger schema and topics exist before anything runs."""
    with Ledger(settings.ledger_url) as ledger:
        ledger.migrate()
    ensure_topics(settings.kafka_bootstrap, options=kafka_python_options(settings.kafka_security))


def check_broker(settings: Settings, dry_run: bool = False) -> Assessment:
    """Before anything is pulled or reconciled: what the broker lost against the ledger's watermarks, and
    (unless `dry_run`) the recovery — sources rewound, the credit stream rebuilt from the ledger."""
    with Ledger(settings.ledger_url) as ledger:
        assessment = assess(settings, ledger)
        if dry_run or not assessment.lost:
            if not dry_run:
                prune_pages(ledger, ATTENDANCE_TOPIC)
            return assessment
        apply_recovery(ledger, assessment)
        if assessment.credit_stream_behind:
            producer = make_producer(
                settings.kafka_bootstrap, backend=settings.kafka_backend, security=settings.kafka_security
            )
            try:
                republish_credits(
                    ledger, producer, codec_for(settings, "credit_record"), batch_size=settings.batch_size
                )
            finally:
                producer.close()
        return assessment


def pull(settings: Settings, source_name: str, on_page: Callable[[PullStats], None] | None = None) -> PullStats:
    source = next(s for s in build_sources(settings) if s.name == source_name)
    with Ledger(settings.ledger_url) as ledger:
        producer = make_producer(
            settings.kafka_bootstrap, backend=settings.kafka_backend, security=settings.kafka_security
        )
        try:
            return pull_source(source, codec_for(settings, "attendance_event"), producer, ledger, on_page)
        finally:
            producer.close()


def reconcile(settings: Settings, on_batch: Callable[[IntakeStats], None] | None = None) -> IntakeStats:
    with Ledger(settings.ledger_url) as ledger:
        consumer = make_consumer(
            settings.kafka_bootstrap,
            ATTENDANCE_TOPIC,
            settings.consumer_group,
            settings.batch_size,
            backend=settings.kafka_backend,
            security=settings.kafka_security,
        )
        try:
            return reconcile_topic(
                consumer,
                codec_for(settings, "attendance_event"),
                ledger,
                fetch_catalog(settings),
                build_registries(settings),
                on_batch,
                professions=settings.professions.mapping(),
            )
        finally:
            consumer.close()


def publish(settings: Settings) -> tuple[int, int]:
    """(credit versions, dead letters) published."""
    with Ledger(settings.ledger_url) as ledger:
        producer = make_producer(
            settings.kafka_bootstrap, backend=settings.kafka_backend, security=settings.kafka_security
        )
        try:
            return OutboxPublisher(settings, ledger, producer).publish()
        finally:
            producer.close()


class OutboxPublisher:
    """The outbox onto Kafka through one ledger and one producer, as often as asked: the nightly run publishes
    once, the stream after every reconciled batch with the same clients (and codecs) for its whole life."""

    def __init__(self, settings: Settings, ledger: Ledger, producer: Producer) -> None:
        self.ledger = ledger
        self.producer = producer
        self.batch_size = settings.batch_size
        self.with_payload = settings.deadletters.publish_payload
        self.credit_codec = codec_for(settings, "credit_record")
        self.dead_letter_codec = codec_for(settings, "dead_letter")

    def publish(self) -> tuple[int, int]:
        """(credit versions, dead letters) published, each marked so only once the broker acknowledged it."""
        credits = publish_credits(self.ledger, self.producer, self.credit_codec, self.batch_size)
        dead = publish_dead_letters(
            self.ledger, self.producer, self.dead_letter_codec, self.batch_size, with_payload=self.with_payload
        )
        return credits, dead


def deliver(settings: Settings, registry_name: str, retry_unavailable: bool = True) -> DeliveryStats:
    """Deliver what is pending to one registry; with `retry_unavailable` (the nightly run, the stream), first
    put back in the queue the unavailable-registry failures whose retry is due. A replay or a dead-letter retry
    sends what the operator chose, and only that."""
    registry_config = next(r for r in settings.registries if r.name == registry_name)
    registry = next(r for r in build_registries(settings) if r.name == registry_name)
    delays = settings.retry_delays_of(registry_name) if retry_unavailable else []
    with Ledger(settings.ledger_url) as ledger:
        return deliver_with_retries(ledger, registry, delays, registry_config.batch_size)


def registry_diff(settings: Settings, registry_name: str, run_id: str) -> dict[str, int]:
    """The nightly diff & repair of one registry, stored with the run; returns its counts only (the findings
    hold the registry's raw entries, PII included, which must not travel into task results)."""
    registry_config = next(r for r in settings.registries if r.name == registry_name)
    registry = next(r for r in build_registries(settings) if r.name == registry_name)
    with Ledger(settings.ledger_url) as ledger:
        diff = diff_and_repair(ledger, registry, registry_config.extra_holdings, registry_config.batch_size)
        save_registry_diff(ledger, run_id, registry_name, diff.counts(), diff.record_ids())
        return diff.counts()


def credits_awarded(settings: Settings) -> int:
    with Ledger(settings.ledger_url) as ledger:
        return awarded_credits(ledger)
