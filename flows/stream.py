"""The stream deployment: reconcile cme.attendance.v1 continuously and keep the credit stream and the registries
up to date, until SIGTERM/SIGINT (DESIGN §1). The work is in `pipeline.stages.stream`."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.nightly import load_settings
from ledger.runs import finish_run, start_run
from ledger.store import Ledger
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.reports.metrics_export import serving
from pipeline.stages import nightly
from pipeline.stages.stream import StreamStats, run_stream, stop_on_signals


@flow(name="stream-reconciliation")
def stream_reconciliation(
    config_path: str | None = None,
    endpoints: dict[str, str] | None = None,
    delivery_interval_s: float = 5.0,
) -> dict[str, Any]:
    """Consume attendance events as they arrive, reconcile them into the ledger, publish and deliver the credits;
    on SIGTERM finish and commit the batch in hand, deliver what it produced, and return the counts."""
    logger = get_run_logger()
    settings = load_settings(config_path, endpoints)
    nightly.prepare(settings)
    run_id = flow_run.get_id() or str(uuid.uuid4())
    with Ledger(settings.ledger_url) as ledger:
        start_run(ledger, run_id, "stream")
    stop = threading.Event()
    stats = StreamStats()
    status = "failed"

    def progress(current: StreamStats) -> None:
        logger.info(
            "reconciled %d messages in %d batches",
            current.consumed,
            current.batches,
            extra={"counts": current.counts()},
        )

    try:
        with stop_on_signals(stop), serving(settings.metrics):
            logger.info("consuming %s as group %s", ATTENDANCE_TOPIC, settings.consumer_group)
            stats = run_stream(settings, stop, delivery_interval_s=delivery_interval_s, on_batch=progress)
        status = "stopped"
    finally:
        with Ledger(settings.ledger_url) as ledger:
            finish_run(ledger, run_id, status, stats.counts())
    logger.info("stream %s stopped: %s", run_id, stats.counts(), extra={"stage": "stream", "counts": stats.counts()})
    return stats.counts()
