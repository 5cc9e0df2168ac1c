"""One benchmark measurement for one N, in its own process (so its peak RSS is its own): a fresh embedded
broker, sandboxes loaded with generated statements, a fresh SQLite ledger; prints one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.generate import statements
from deploy.broker import ATTENDANCE_TOPIC, TopicSpec, ensure_topics
from deploy.embedded import EmbeddedStack
from pipeline import stages
from pipeline.config import Settings
from pipeline.factory import build_sources, codec_for
from pipeline.kafka_io import BatchConsumer, make_producer, publish
from pipeline.pull import normalise_page

CONFIG = Path(__file__).with_name("cmesync.toml")
REFERENCE_TOPIC = "bench.reference"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(timings: dict[str, float], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def reference_produce(bootstrap: str, count: int, size: int) -> float:
    """Bare kafka-python: `count` messages of `size` bytes with the same producer settings as ours; msgs/s."""
    ensure_topics(bootstrap, (TopicSpec(REFERENCE_TOPIC),))
    producer = make_producer(bootstrap)
    payload = os.urandom(size)
    started = time.perf_counter()
    futures = [producer.send(REFERENCE_TOPIC, value=payload) for _ in range(count)]
    producer.flush()
    for future in futures:
        future.get()
    elapsed = time.perf_counter() - started
    producer.close()
    return count / elapsed


def measure(count: int, seed: int, workdir: Path) -> dict[str, Any]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect import flow

    from flows.nightly import nightly_reconciliation

    @flow(name="bench-warmup")
    def warmup() -> None:
        """Starts Prefect's ephemeral server, so that its start-up is not counted as orchestration."""

    workdir.mkdir(parents=True, exist_ok=True)
    statements_path = workdir / f"statements-{count}.json"
    statements_path.write_text(json.dumps(statements(count, seed)))
    ledger_path = workdir / f"ledger-{count}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger_path}{suffix}").unlink(missing_ok=True)
    os.environ["CMESYNC_LEDGER_URL"] = f"sqlite:///{ledger_path}"
    result: dict[str, Any] = {"events": count}
    with EmbeddedStack(statements_path) as stack:
        base = Settings.load(CONFIG)
        endpoints = stack.endpoints(base)
        settings = base.with_endpoints(endpoints)
        stages.prepare(settings)

        source = build_sources(settings)[0]
        codec = codec_for(settings, "attendance_event")
        pages = list(source.pages(None))
        started = time.perf_counter()
        messages = [m for page in pages for m in normalise_page(source, page, codec)[0]]
        result["normalise_s"] = time.perf_counter() - started
        mean_size = sum(len(v) for _, v in messages) // max(len(messages), 1)
        result["message_bytes"] = mean_size
        result["reference_produce_per_s"] = reference_produce(settings.kafka_bootstrap, count, mean_size)

        started = time.perf_counter()
        warmup()
        result["prefect_warmup_s"] = time.perf_counter() - started

        timings: dict[str, float] = {}
        for name in ("pull", "reconcile", "publish", "deliver", "prepare", "credits_awarded"):
            setattr(stages, name, timed(timings, name, getattr(stages, name)))
        started = time.perf_counter()
        counts = nightly_reconciliation(config_path=str(CONFIG), endpoints=endpoints)
        wall = time.perf_counter() - started
        result["counts"] = counts
        result["end_to_end_s"] = wall
        result["end_to_end_per_s"] = count / wall
        result["stage_s"] = timings
        result["orchestration_s"] = wall - sum(timings.values())
        result["orchestration_share"] = result["orchestration_s"] / wall
        result["ratio_to_reference"] = result["end_to_end_per_s"] / result["reference_produce_per_s"]

        # Publish the already-encoded events to a scratch topic: produce cost alone, with our messages.
        ensure_topics(settings.kafka_bootstrap, (TopicSpec("bench.produce"),))
        producer = make_producer(settings.kafka_bootstrap)
        started = time.perf_counter()
        publish(producer, "bench.produce", messages)
        result["produce_s"] = time.perf_counter() - started
        producer.close()

        consumer = BatchConsumer(settings.kafka_bootstrap, ATTENDANCE_TOPIC, "bench-consume-only", settings.batch_size)
        started = time.perf_counter()
        consumed = sum(len(batch) for batch in consumer.batches())
        result["consume_s"] = time.perf_counter() - started
        result["consumed"] = consumed
        consumer.close()
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark measurement (used by `python -m bench`).")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.events, args.seed, args.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
