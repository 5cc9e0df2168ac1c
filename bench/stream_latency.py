"""Latency of the event-driven path: attendance events produced at a steady rate while the stream machinery
(`pipeline.stages.stream.run_stream`, what `cmesync stream` runs inside its flow) runs in a child process; for each
event, the time from its produce call to the first credit version on cme.credits.v1 whose evidence holds it,
as a consumer of that topic sees it. Prints p50 / p99 / max; never asserted by tests.

`python -m bench.stream_latency --duration 60 --rate 500` (or `python -m bench --stream-latency`).

Events that never reach a credit version (duplicates, voids, bad records, completions that change nothing)
are counted, not timed. The first second's worth of events warms the stream up and is not timed either.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, get_args

from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from bench.run import CONFIG, LEDGERS, SandboxProcess, fresh_ledger, generated
from deploy.broker import EmbeddedBroker
from deploy.embedded import embedded_endpoints
from flows.prefect_env import quiet_prefect
from pipeline.config import Settings
from pipeline.factory import build_sources, codec_for
from pipeline.kafka.interface import KafkaBackend, Message, publish
from pipeline.kafka.io import make_producer
from pipeline.kafka.lag import consumer_lag
from pipeline.kafka.topics import ATTENDANCE_TOPIC, CREDITS_TOPIC
from pipeline.stages import nightly
from pipeline.stages.pull import normalise_page
from pipeline.stages.stream import StreamStats, run_stream, stop_on_signals
from reconcile.credit_rules import event_key

console = Console()
READY = "stream-ready"
CATCH_UP_TIMEOUT_S = 600.0


def child(settings_json: str, delivery_interval_s: float) -> int:
    """The stream in this process until SIGTERM; says READY after its first reconciled batch, then its counts."""
    settings = Settings.model_validate_json(settings_json)
    stop = threading.Event()
    ready = threading.Event()

    def on_batch(_stats: StreamStats) -> None:
        if not ready.is_set():
            ready.set()
            print(READY, flush=True)

    with stop_on_signals(stop):
        stats = run_stream(settings, stop, delivery_interval_s=delivery_interval_s, on_batch=on_batch)
    print(json.dumps(stats.counts()), flush=True)
    return 0


class CreditWatcher(threading.Thread):
    """Reads cme.credits.v1 as it grows and notes when each event first shows in a credit version's evidence."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="credit-watcher", daemon=True)
        self.codec = codec_for(settings, "credit_record")
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        partitions = self.consumer.partitions_for_topic(CREDITS_TOPIC) or set()
        self.consumer.assign([TopicPartition(CREDITS_TOPIC, p) for p in sorted(partitions)])
        self.first_seen: dict[str, float] = {}
        self.last_message_at = time.monotonic()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            for records in self.consumer.poll(timeout_ms=50).values():
                seen_at = time.monotonic()
                self.last_message_at = seen_at
                for record in records:
                    for evidence in self.codec.decode(record.value)["evidence"]:
                        self.first_seen.setdefault(evidence, seen_at)
        self.consumer.close()

    def stop(self) -> None:
        self._stopping.set()


def attendance_messages(settings: Settings) -> list[tuple[str, Message]]:
    """The generated statements as the xAPI connector normalises them: (evidence key, encoded event)."""
    source = build_sources(settings)[0]
    codec = codec_for(settings, "attendance_event")
    keyed: list[tuple[str, Message]] = []
    for page in source.pages(None):
        for message in normalise_page(source, page, codec)[0]:
            keyed.append((event_key(codec.decode(message[1])), message))
    return keyed


def produce_steadily(
    settings: Settings, keyed: list[tuple[str, Message]], rate: float, backend: KafkaBackend
) -> tuple[dict[str, float], float]:
    """Publish at `rate` events/s on a fixed schedule (a late tick sends what is due, so the rate holds);
    returns each event's produce time and the seconds the whole schedule took."""
    producer = make_producer(settings.kafka_bootstrap, backend=backend)
    produced_at: dict[str, float] = {}
    sent = 0
    started = time.monotonic()
    try:
        while sent < len(keyed):
            due = min(len(keyed), int((time.monotonic() - started) * rate) + 1)
            if due <= sent:
                time.sleep(max(started + sent / rate - time.monotonic(), 0.0))
                continue
            chunk = keyed[sent:due]
            now = time.monotonic()
            for key, _ in chunk:
                produced_at.setdefault(key, now)
            publish(producer, ATTENDANCE_TOPIC, [message for _, message in chunk])
            sent = due
    finally:
        producer.close()
    return produced_at, time.monotonic() - started


def wait_until_reconciled(settings: Settings, timeout_s: float) -> bool:
    """Whether the stream's group committed up to the end of cme.attendance.v1 within `timeout_s`: offsets are
    committed only after the ledger transaction, so then every produced event is in the ledger."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(p.lag == 0 for p in consumer_lag(settings.kafka_bootstrap, settings.consumer_group)):
            return True
        time.sleep(0.2)
    return False


def measure(
    duration_s: float,
    rate: float,
    seed: int,
    workdir: Path,
    backend: KafkaBackend,
    ledger: str,
    settle_s: float,
    delivery_interval_s: float,
    registry_delay_s: float = 0.0,
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    warmup = max(int(rate), 1)
    statements_path = generated(workdir, int(duration_s * rate) + warmup, seed)
    with (
        fresh_ledger(ledger, workdir / "ledger-stream-latency.db") as ledger_url,
        EmbeddedBroker() as broker,
        SandboxProcess(statements_path, registry_delay_s) as sandboxes,
    ):
        base = Settings.load(CONFIG)
        settings = base.with_endpoints(embedded_endpoints(base, broker.bootstrap, sandboxes)).model_copy(
            update={"ledger_url": ledger_url, "kafka_backend": backend}
        )
        nightly.prepare(settings)
        keyed = attendance_messages(settings)
        stream = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.stream_latency",
                "--child",
                "--delivery-interval",
                str(delivery_interval_s),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert stream.stdin is not None
        # The settings (tokens included) go through a pipe, not the command line other users can read.
        stream.stdin.write(settings.model_dump_json())
        stream.stdin.close()
        try:
            watcher = CreditWatcher(settings)
            watcher.start()
            produce_steadily(settings, keyed[:warmup], rate, backend)
            assert stream.stdout is not None
            if stream.stdout.readline().strip() != READY:
                raise SystemExit(f"the stream did not start (exit {stream.wait()})")
            time.sleep(1.0)
            measured = keyed[warmup:]
            produced_at, produce_s = produce_steadily(settings, measured, rate, backend)
            caught_up = wait_until_reconciled(settings, CATCH_UP_TIMEOUT_S)
            produced_end = time.monotonic()
            # The end: every event reconciled (offsets committed), then no new credit version for `settle_s`.
            while time.monotonic() - max(watcher.last_message_at, produced_end) < settle_s:
                time.sleep(0.2)
            watcher.stop()
            watcher.join(timeout=30)
        finally:
            stream.send_signal(signal.SIGTERM)
            out = stream.stdout.read() if stream.stdout else ""
            stream.wait(timeout=300)
    latencies = sorted(watcher.first_seen[key] - at for key, at in produced_at.items() if key in watcher.first_seen)
    result: dict[str, Any] = {
        "backend": backend,
        "ledger": ledger,
        "rate_asked": rate,
        "registry_delay_s": registry_delay_s,
        "events_produced": len(produced_at),
        "rate_achieved": len(produced_at) / produce_s,
        "events_with_credit": len(latencies),
        "events_without_credit": len(produced_at) - len(latencies),
        "stream_counts": json.loads(out.strip().splitlines()[-1]) if out.strip() else {},
        "stream_exit": stream.returncode,
        "stream_caught_up": caught_up,
    }
    if latencies:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
        result.update(p50_s=cuts[49], p99_s=cuts[98], max_s=latencies[-1])
    return result


def table(result: dict[str, Any]) -> Table:
    out = Table(title=f"stream latency: produce → credit version on {CREDITS_TOPIC}")
    out.add_column("figure")
    out.add_column(f"{result['backend']}\n{result['ledger']}", justify="right")
    out.add_row("rate asked / achieved (events/s)", f"{result['rate_asked']:,.0f} / {result['rate_achieved']:,.0f}")
    out.add_row("registry answers after (s)", f"{result['registry_delay_s']:g}")
    out.add_row("events produced", f"{result['events_produced']:,}")
    out.add_row("events timed (reached a credit version)", f"{result['events_with_credit']:,}")
    out.add_row("events with no new credit version", f"{result['events_without_credit']:,}")
    out.add_row("stream caught up with the producer", "yes" if result["stream_caught_up"] else "NO")
    for label, key in (("p50 (s)", "p50_s"), ("p99 (s)", "p99_s"), ("max (s)", "max_s")):
        out.add_row(label, f"{result[key]:.3f}" if key in result else "n/a")
    return out


def main(argv: list[str] | None = None) -> int:
    quiet_prefect()  # the stream child inherits it
    parser = argparse.ArgumentParser(
        prog="python -m bench.stream_latency",
        description="Produce attendance events at a steady rate into a running stream; print produce → credit "
        "latency p50/p99/max.",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady production (default 60)")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second (default 500)")
    parser.add_argument("--seed", type=int, default=7, help="data generator seed")
    parser.add_argument("--backend", choices=get_args(KafkaBackend), default="kafka-python")
    parser.add_argument("--ledger", choices=LEDGERS, default="sqlite")
    parser.add_argument("--settle", type=float, default=10.0, help="quiet seconds on the credit stream that end it")
    parser.add_argument("--delivery-interval", type=float, default=5.0, help="the stream's delivery pump interval")
    parser.add_argument(
        "--registry-delay",
        type=float,
        default=0.0,
        help="seconds the sandbox registry takes to answer each request: a slow registry (default 0)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"))
    parser.add_argument("--json", type=Path, default=Path("var/bench/stream-latency.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # settings JSON on stdin
    args = parser.parse_args(argv)
    if args.child:
        return child(sys.stdin.read(), args.delivery_interval)
    # A terminated measurement unwinds its `with` blocks, so its broker, sandboxes and stream stop with it.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    console.print(f"[bold]measuring[/] stream latency: {args.rate:,.0f} events/s for {args.duration:,.0f} s …")
    result = measure(
        args.duration,
        args.rate,
        args.seed,
        args.workdir,
        args.backend,
        args.ledger,
        args.settle,
        args.delivery_interval,
        args.registry_delay,
    )
    console.print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    console.print(f"figures written to {args.json}")
    print(json.dumps(result))
    return 0 if result["stream_exit"] == 0 and result["stream_caught_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
