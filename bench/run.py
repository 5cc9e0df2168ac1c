"""One benchmark measurement for one N, in its own process (so its peak RSS is its own): a fresh embedded
broker, sandboxes (in a process of their own) loaded with generated statements, a fresh SQLite ledger; prints
one JSON object."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

from bench.floor import run_floor
from bench.generate import iter_statements
from bench.scaleout import drop_database, fresh_database
from deploy.broker import EmbeddedBroker
from deploy.embedded import embedded_endpoints
from flows.prefect_env import quiet_prefect
from pipeline.config import Settings
from pipeline.factory import build_sources, codec_for
from pipeline.kafka.interface import KafkaBackend, Message, publish
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.kafka_python import kafka_python_producer
from pipeline.kafka.topics import ATTENDANCE_TOPIC, TopicSpec, ensure_topics
from pipeline.stages import nightly
from pipeline.stages.pull import normalise_page

CONFIG = Path(__file__).with_name("cmesync.toml")
REFERENCE_TOPIC = "bench.reference"
LEDGERS = ("sqlite", "postgresql")


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
    producer = kafka_python_producer(bootstrap)
    payload = os.urandom(size)
    started = time.perf_counter()
    futures = [producer.send(REFERENCE_TOPIC, value=payload) for _ in range(count)]
    producer.flush()
    for future in futures:
        future.get()
    elapsed = time.perf_counter() - started
    producer.close()
    return count / elapsed


def confluent_reference_produce(bootstrap: str, count: int, size: int) -> float:
    """The same with confluent-kafka (librdkafka), for the optional backend's figures; msgs/s."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    payload = os.urandom(size)
    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(REFERENCE_TOPIC, value=payload)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    unacknowledged = producer.flush(60)
    elapsed = time.perf_counter() - started
    if unacknowledged:
        raise SystemExit(f"confluent-kafka reference: {unacknowledged} messages not acknowledged")
    return count / elapsed


class SandboxProcess:
    """The sandboxes in a process of their own (`python -m deploy.sandbox --json`), so that the statements
    the LRS serves and the holdings the registries keep do not count in the measured peak RSS."""

    def __init__(self, statements_path: Path, registry_delay_s: float = 0.0) -> None:
        self.statements_path = statements_path
        self.registry_delay_s = registry_delay_s
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> dict[str, str]:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploy.sandbox",
                "--json",
                "--statements",
                str(self.statements_path),
                "--registry-delay",
                str(self.registry_delay_s),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise SystemExit(f"the sandboxes did not start (exit {self._process.wait()})")
        return dict(json.loads(line))

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)


def generated(workdir: Path, count: int, seed: int) -> Path:
    """The statements file for (count, seed), generated in a child process once and reused afterwards."""
    path = workdir / f"statements-{count}-{seed}.json"
    if not path.exists():
        partial = path.with_suffix(".part")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.generate",
                "--events",
                str(count),
                "--seed",
                str(seed),
                "--out",
                str(partial),
            ],
            check=True,
        )
        partial.rename(path)
    return path


@contextlib.contextmanager
def fresh_ledger(kind: str, sqlite_path: Path) -> Iterator[str]:
    """A ledger nobody has written to: a new SQLite file, or a new database on the machine's PostgreSQL
    (dropped afterwards), so every measurement starts from the same empty state."""
    if kind == "postgresql":
        url = fresh_database()
        try:
            yield url
        finally:
            drop_database(url)
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    yield f"sqlite:///{sqlite_path}"


def measure(
    count: int, seed: int, workdir: Path, backend: KafkaBackend = "kafka-python", ledger: str = "sqlite"
) -> dict[str, Any]:
    """The nightly run first, so that peak RSS is the run's own; then each stage alone."""
    quiet_prefect()
    os.environ["CMESYNC_KAFKA_BACKEND"] = backend
    from prefect import flow

    from flows.nightly import nightly_reconciliation

    @flow(name="bench-warmup")
    def warmup() -> None:
        """Starts Prefect's ephemeral server, so that its start-up is not counted as orchestration."""

    workdir.mkdir(parents=True, exist_ok=True)
    statements_path = generated(workdir, count, seed)
    result: dict[str, Any] = {"events": count, "backend": backend, "ledger": ledger}
    with (
        fresh_ledger(ledger, workdir / f"ledger-{count}.db") as ledger_url,
        EmbeddedBroker() as broker,
        SandboxProcess(statements_path) as sandboxes,
    ):
        os.environ["CMESYNC_LEDGER_URL"] = ledger_url
        base = Settings.load(CONFIG)
        endpoints = embedded_endpoints(base, broker.bootstrap, sandboxes)
        settings = base.with_endpoints(endpoints)

        started = time.perf_counter()
        warmup()
        result["prefect_warmup_s"] = time.perf_counter() - started

        timings: dict[str, float] = {}
        for name in ("pull", "reconcile", "publish", "deliver", "registry_diff", "prepare", "credits_awarded"):
            setattr(nightly, name, timed(timings, name, getattr(nightly, name)))
        started = time.perf_counter()
        counts = nightly_reconciliation(config_path=str(CONFIG), endpoints=endpoints)
        wall = time.perf_counter() - started
        result["peak_rss_mb"] = peak_rss_mb()
        result["counts"] = counts
        result["end_to_end_s"] = wall
        result["end_to_end_per_s"] = count / wall
        result["stage_s"] = timings
        result["orchestration_s"] = wall - sum(timings.values())
        result["orchestration_share"] = result["orchestration_s"] / wall

        source = build_sources(settings)[0]
        codec = codec_for(settings, "attendance_event")
        messages: list[Message] = []
        normalise_s = 0.0
        for page in source.pages(None):
            started = time.perf_counter()
            messages += normalise_page(source, page, codec)[0]
            normalise_s += time.perf_counter() - started
        result["normalise_s"] = normalise_s
        mean_size = sum(len(v) for _, v in messages) // max(len(messages), 1)
        result["message_bytes"] = mean_size
        result["reference_produce_per_s"] = reference_produce(settings.kafka_bootstrap, count, mean_size)
        result["ratio_to_reference"] = result["end_to_end_per_s"] / result["reference_produce_per_s"]
        if backend == "confluent-kafka":
            result["confluent_reference_produce_per_s"] = confluent_reference_produce(
                settings.kafka_bootstrap, count, mean_size
            )

        ensure_topics(settings.kafka_bootstrap, (TopicSpec("bench.produce"),))
        producer = make_producer(settings.kafka_bootstrap, backend=backend)
        started = time.perf_counter()
        publish(producer, "bench.produce", messages)
        result["produce_s"] = time.perf_counter() - started
        producer.close()

        consumer = make_consumer(
            settings.kafka_bootstrap, ATTENDANCE_TOPIC, "bench-consume-only", settings.batch_size, backend=backend
        )
        started = time.perf_counter()
        consumed = sum(len(batch) for batch in consumer.batches())
        result["consume_s"] = time.perf_counter() - started
        result["consumed"] = consumed
        consumer.close()

        result |= run_floor(settings.kafka_bootstrap, iter_statements(count, seed), workdir, backend=backend)
        result["ratio_to_floor"] = result["end_to_end_per_s"] / result["floor_per_s"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark measurement (used by `python -m bench`).")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backend", choices=get_args(KafkaBackend), default="kafka-python")
    parser.add_argument("--ledger", choices=LEDGERS, default="sqlite")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)
    # A terminated measurement unwinds its `with` blocks, so its broker and sandbox processes stop with it.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    print(json.dumps(measure(args.events, args.seed, args.workdir, args.backend, args.ledger)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
