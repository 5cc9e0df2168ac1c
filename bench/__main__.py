"""`python -m bench`: the nightly run measured end to end and by stage, for several N, in one command.

Each N runs in a child process (`bench.run`) with its own embedded broker, so that peak RSS is that N's
own; the reference (bare kafka-python producing N messages of the same size) runs on the same broker.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

from rich.console import Console
from rich.table import Table

from bench.run import LEDGERS
from pipeline.kafka.interface import KafkaBackend

console = Console()


def run_one(events: int, seed: int, workdir: Path, backend: str, ledger: str = "sqlite") -> dict[str, Any]:
    console.print(f"[bold]measuring[/] {events:,} events on {backend}, {ledger} ledger …")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--events",
            str(events),
            "--seed",
            str(seed),
            "--workdir",
            str(workdir),
            "--backend",
            backend,
            "--ledger",
            ledger,
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(f"benchmark for {events} events failed:\n{completed.stderr[-3000:]}")
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def table(results: list[dict[str, Any]]) -> Table:
    out = Table(title="cme-credit-sync benchmark (one process, embedded Tansu broker)")
    out.add_column("figure")
    for result in results:
        out.add_column(f"N={result['events']:,}\n{result['backend']}\n{result['ledger']}", justify="right")
    rows: list[tuple[str, str]] = [
        ("reference: bare kafka-python produce (msg/s)", "reference_produce_per_s"),
        ("reference: bare confluent-kafka produce (msg/s)", "confluent_reference_produce_per_s"),
        ("floor: bare pipeline of the same shape (events/s)", "floor_per_s"),
        ("end to end (events/s)", "end_to_end_per_s"),
        ("end to end / floor (headline)", "ratio_to_floor"),
        ("end to end / reference", "ratio_to_reference"),
        ("end to end wall (s)", "end_to_end_s"),
        ("Prefect orchestration (s)", "orchestration_s"),
        ("Prefect orchestration share of wall", "orchestration_share"),
        ("normalise only (s)", "normalise_s"),
        ("produce only, our messages (s)", "produce_s"),
        ("consume only (s)", "consume_s"),
        ("stage pull = source + normalise + produce (s)", "stage_s.pull"),
        ("stage reconcile = consume + reconcile + ledger (s)", "stage_s.reconcile"),
        ("stage publish credits (s)", "stage_s.publish"),
        ("stage registry delivery (s)", "stage_s.deliver"),
        ("stage registry diff & repair (s)", "stage_s.registry_diff"),
        ("peak RSS (MB)", "peak_rss_mb"),
    ]
    for label, key in rows:
        values = []
        for result in results:
            value: Any = result
            for part in key.split("."):
                value = value.get(part, float("nan")) if isinstance(value, dict) else float("nan")
            values.append(f"{value:,.3f}" if isinstance(value, float) and value < 10 else f"{value:,.0f}")
        out.add_row(label, *values)
    return out


def targets(results: list[dict[str, Any]]) -> list[str]:
    by_n = {r["events"]: r for r in results if r["backend"] == "kafka-python" and r["ledger"] == "sqlite"}
    floor_target = {"confluent-kafka": 0.5, "kafka-python": 0.8}
    lines = [
        f"N={r['events']:,} on {r['backend']}, {r['ledger']}: end to end is {r['ratio_to_floor']:.2f} x the floor, "
        f"a bare pipeline of the same shape (target >= {floor_target[r['backend']]}); "
        f"{r['ratio_to_reference']:.2f} x the bare kafka-python produce rate"
        for r in results
    ]
    if 100_000 in by_n:
        lines.append(
            f"N=100,000: Prefect orchestration is {by_n[100_000]['orchestration_share']:.1%} of wall (target <= 10 %)"
        )
    if 100_000 in by_n and 1_000_000 in by_n:
        ratio = by_n[1_000_000]["peak_rss_mb"] / by_n[100_000]["peak_rss_mb"]
        lines.append(f"peak RSS at 1M is {ratio:.2f} x the RSS at 100k (target <= 1.5)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the nightly run end to end and per stage against bare kafka-python, for each N.",
        epilog=(
            "examples: python -m bench --events 10000 100000 --json var/bench/results.json; "
            "python -m bench --events 1000000 (takes a while); python -m bench --scale-out 50000; "
            "python -m bench --stream-latency"
        ),
    )
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000], help="N values (default 10k 100k)")
    parser.add_argument("--seed", type=int, default=7, help="data generator seed")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"), help="where data and ledgers go")
    parser.add_argument("--json", type=Path, default=Path("var/bench/results.json"), help="where to write figures")
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=get_args(KafkaBackend),
        default=["kafka-python"],
        help="Kafka client(s) to run the pipeline on; confluent-kafka is the optional extra (default kafka-python)",
    )
    parser.add_argument(
        "--ledger",
        nargs="+",
        choices=LEDGERS,
        default=["sqlite"],
        help="ledger(s) to run on: sqlite (a fresh file) and/or postgresql (a fresh database on 127.0.0.1:5432)",
    )
    parser.add_argument(
        "--scale-out",
        type=int,
        metavar="N",
        help="instead: reconcile N events with 1 and with 2 reconciler processes (one group, 2 partitions, PostgreSQL)",
    )
    parser.add_argument(
        "--stream-latency",
        action="store_true",
        help="instead: produce 500 events/s for 60 s into a running stream, print produce → credit p50/p99 "
        "(options: python -m bench.stream_latency --help)",
    )
    args = parser.parse_args(argv)
    if args.stream_latency:
        from bench.stream_latency import main as stream_latency

        return stream_latency(["--backend", args.backends[0], "--ledger", args.ledger[0]])
    if args.scale_out:
        from bench.scaleout import main as scale_out

        return scale_out(["--events", str(args.scale_out)])
    results = [
        run_one(n, args.seed, args.workdir, backend, ledger)
        for ledger in args.ledger
        for backend in args.backends
        for n in args.events
    ]
    console.print(table(results))
    for line in targets(results):
        console.print(line)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": results}, indent=2))
    console.print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
