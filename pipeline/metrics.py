"""The Prometheus metrics of cmesync, in a registry of their own (Prefect may use the global one).

Counted at batch level, from the counts the stages already keep. Labels are bounded by configuration or by
our own vocabularies (connector names, registries, reason codes, credit types, stages): never a learner,
record or event id, and nothing from a learner's record. How they leave the process is `metrics_export.py`.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECORDS_READ = Counter(
    "cmesync_source_records_read", "Records read from a source, before normalising.", ["source"], registry=REGISTRY
)
RECORDS_REJECTED = Counter(
    "cmesync_records_rejected",
    "Records or events refused into dead letters, by stage, source and reason code.",
    ["stage", "source", "reason_code"],
    registry=REGISTRY,
)
EVENTS_PRODUCED = Counter(
    "cmesync_events_produced", "AttendanceEvents acknowledged on cme.attendance.v1.", ["source"], registry=REGISTRY
)
MESSAGES_RECONCILED = Counter(
    "cmesync_messages_reconciled",
    "Attendance messages reconciled into the ledger: accepted, duplicate or rejected.",
    ["outcome"],
    registry=REGISTRY,
)
RECONCILE_BATCH_SECONDS = Histogram(
    "cmesync_reconcile_batch_duration_seconds",
    "Time to reconcile one batch of consumed messages into the ledger (one transaction).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "cmesync_consumer_lag_messages",
    "Messages between the reconciler's position and the end of each partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
CREDIT_VERSIONS = Counter(
    "cmesync_credit_versions",
    "Credit record versions written to the ledger, by credit type and status.",
    ["credit_type", "status"],
    registry=REGISTRY,
)
CREDITS_PUBLISHED = Counter(
    "cmesync_credits_published", "Credit record versions acknowledged on cme.credits.v1.", registry=REGISTRY
)
DELIVERIES = Counter(
    "cmesync_deliveries",
    "Credit deliveries to registries, by outcome: sent, failed (a dead letter) or skipped.",
    ["registry", "outcome"],
    registry=REGISTRY,
)
HTTP_RESPONSES = Counter(
    "cmesync_registry_http_responses",
    "HTTP attempts against a registry by status class (2xx, 4xx, 5xx…; `error` = no HTTP answer).",
    ["registry", "status_class"],
    registry=REGISTRY,
)
HTTP_RETRIES = Counter(
    "cmesync_registry_http_retries",
    "HTTP requests to a registry sent again after a retriable failure.",
    ["registry"],
    registry=REGISTRY,
)
DEAD_LETTERS_OPEN = Gauge(
    "cmesync_dead_letters_open",
    "Dead letters nobody has resolved yet, by stage and reason code.",
    ["stage", "reason_code"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "cmesync_last_success_timestamp_seconds",
    "Unix time of the last succeeded nightly run (runs table) or stream delivery pass, per deployment.",
    ["deployment"],
    registry=REGISTRY,
)

# Every metric family this module defines, by its exposed name (the dashboard test checks its queries on it).
FAMILIES = (
    RECORDS_READ,
    RECORDS_REJECTED,
    EVENTS_PRODUCED,
    MESSAGES_RECONCILED,
    RECONCILE_BATCH_SECONDS,
    CONSUMER_LAG,
    CREDIT_VERSIONS,
    CREDITS_PUBLISHED,
    DELIVERIES,
    HTTP_RESPONSES,
    HTTP_RETRIES,
    DEAD_LETTERS_OPEN,
    LAST_SUCCESS,
)
_open_seen: set[tuple[str, str]] = set()


def count_page(source: str, records: int, events: int) -> None:
    RECORDS_READ.labels(source).inc(records)
    EVENTS_PRODUCED.labels(source).inc(events)


def count_rejections(stage: str, rejected: Iterable[tuple[str, str]]) -> None:
    """`rejected`: (source, reason code) of each dead letter of one batch."""
    for (source, reason_code), n in Tally(rejected).items():
        RECORDS_REJECTED.labels(stage, source, reason_code).inc(n)


def count_reconciled(accepted: int, duplicates: int, rejected: int, versions: Iterable[tuple[str, str]]) -> None:
    """One reconciled batch; `versions`: (credit type, status) of each credit version it wrote."""
    for outcome, n in (("accepted", accepted), ("duplicate", duplicates), ("rejected", rejected)):
        MESSAGES_RECONCILED.labels(outcome).inc(n)
    for (credit_type, status), n in Tally(versions).items():
        CREDIT_VERSIONS.labels(credit_type, status).inc(n)


def count_deliveries(registry: str, sent: int, failed: int, skipped: int) -> None:
    for outcome, n in (("sent", sent), ("failed", failed), ("skipped", skipped)):
        DELIVERIES.labels(registry, outcome).inc(n)


def set_consumer_lag(topic: str, lag: Mapping[int, int]) -> None:
    for partition, behind in lag.items():
        CONSUMER_LAG.labels(topic, str(partition)).set(behind)


def set_dead_letters_open(counts: Iterable[tuple[str, str, int]]) -> None:
    """(stage, reason code, count) of all open dead letters; pairs no longer open drop to 0."""
    current = {(stage, reason_code): n for stage, reason_code, n in counts}
    for key in _open_seen - current.keys():
        DEAD_LETTERS_OPEN.labels(*key).set(0)
    for key, n in current.items():
        DEAD_LETTERS_OPEN.labels(*key).set(n)
    _open_seen.update(current)


def set_last_success(deployment: str, at: datetime) -> None:
    LAST_SUCCESS.labels(deployment).set(at.timestamp())


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class RegistryHttpMetrics:
    """A registry's HttpClient observer (`connectors.http.HttpObserver`): status classes and retries."""

    def __init__(self, registry: str) -> None:
        self.registry = registry

    def response(self, status: int | None) -> None:
        HTTP_RESPONSES.labels(self.registry, status_class(status)).inc()

    def retry(self) -> None:
        HTTP_RETRIES.labels(self.registry).inc()


def sample_names() -> set[str]:
    """Every series name the registry can expose (`_total`, `_bucket`… included)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    return {
        described.name + suffix
        for family in FAMILIES
        for described in family.describe()
        for suffix in suffixes.get(described.type, ("",))
    }
