"""Scale-out: the reconcile stage with 1 and with 2 reconciler processes in one consumer group over a
2-partition cme.attendance.v1, on PostgreSQL (several writers), printing the speed-up.

`python -m bench.scaleout --events 20000`; a worker is `python -m bench.scaleout --worker ...`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, make_url, select

from bench.generate import statements
from deploy.broker import EmbeddedBroker
from deploy.embedded import embedded_endpoints
from deploy.sandbox.stack import SandboxStack
from ledger import tables as t
from ledger.store import Ledger, latest_credit_versions
from pipeline.catalog import fetch_catalog
from pipeline.config import Settings
from pipeline.factory import build_registries, codec_for
from pipeline.kafka.kafka_python import BatchConsumer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages import nightly
from pipeline.stages.reconcile import reconcile_topic

CONFIG = Path(__file__).with_name("cmesync.toml")
PARTITIONS = 2
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def fresh_database() -> str:
    name = f"cmesync_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def worker(settings_json: str, group: str, share: int) -> None:
    """Join the group, say so, wait for the go line on stdin, reconcile to the end, print counts."""
    settings = Settings.model_validate_json(settings_json)
    consumer = BatchConsumer(settings.kafka_bootstrap, ATTENDANCE_TOPIC, group, settings.batch_size, join_group=True)
    assigned = consumer.wait_for_assignment(share)
    print(json.dumps({"ready": sorted(tp.partition for tp in assigned)}), flush=True)
    sys.stdin.readline()
    with Ledger(settings.ledger_url) as ledger:
        started = time.perf_counter()
        stats = reconcile_topic(
            consumer,
            codec_for(settings, "attendance_event"),
            ledger,
            fetch_catalog(settings),
            build_registries(settings),
            professions=settings.professions.mapping(),
        )
        print(json.dumps({"consumed": stats.consumed, "seconds": time.perf_counter() - started}), flush=True)
        consumer.close()


def reconcile_with(processes: int, settings: Settings) -> dict[str, Any]:
    settings = settings.model_copy(update={"ledger_url": fresh_database()})
    nightly.prepare(settings)
    group = f"bench-scaleout-{processes}-{uuid.uuid4().hex[:6]}"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.scaleout",
                "--worker",
                settings.model_dump_json(),
                "--group",
                group,
                "--share",
                str(PARTITIONS // processes),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    shares = [json.loads(w.stdout.readline())["ready"] for w in workers if w.stdout]
    if sorted(p for share in shares for p in share) != list(range(PARTITIONS)):
        raise SystemExit(f"partitions not shared out between the reconcilers: {shares}")
    started = time.perf_counter()
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    results = [json.loads(w.stdout.readline()) for w in workers if w.stdout]
    for w in workers:
        w.wait(timeout=60)
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "processes": processes,
        "seconds": seconds,
        "shares": shares,
        "consumed": sum(r["consumed"] for r in results),
        "ledger": ledger_digest(settings.ledger_url),
    }
    drop_database(settings.ledger_url)
    return result


def ledger_digest(url: str) -> dict[str, Any]:
    """What the reconcilers decided, independent of the order they decided it in: the latest status, amount and
    completion date of every credit record, and the dead letters by reason. Versions are left out on purpose:
    events for one record may arrive in another order across two partitions and take more versions to settle."""
    c, d = t.credits.c, t.dead_letters.c
    decisions = (
        select(c.record_id, c.status, c.amount, c.completed_on).join(*latest_credit_versions()).order_by(c.record_id)
    )
    digest = hashlib.sha256()
    with Ledger(url) as ledger, ledger.engine.connect() as conn:
        credits = 0
        for row in conn.execute(decisions):
            digest.update(f"{row.record_id}|{row.status}|{row.amount}|{row.completed_on}\n".encode())
            credits += 1
        dead = dict(conn.execute(select(d.reason_code, func.count()).group_by(d.reason_code)).tuples().all())
    return {"credit_records": credits, "decisions_sha256": digest.hexdigest(), "dead_letters": dead}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--share", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.group, args.share)
        return 0
    workdir = Path("var/bench")
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"scaleout-{args.events}.json"
    path.write_text(json.dumps(statements(args.events)))
    with EmbeddedBroker(partitions=PARTITIONS) as broker, SandboxStack(path) as sandboxes:
        base = Settings.load(CONFIG)
        settings = base.with_endpoints(embedded_endpoints(base, broker.bootstrap, sandboxes.urls())).model_copy(
            update={"ledger_url": fresh_database()}
        )
        nightly.prepare(settings)
        pulled = nightly.pull(settings, "bench-xapi")
        one = reconcile_with(1, settings)
        two = reconcile_with(2, settings)
        drop_database(settings.ledger_url)
    speedup = one["seconds"] / two["seconds"]
    same = one["ledger"] == two["ledger"]
    print(
        json.dumps({"events": pulled.events, "one": one, "two": two, "speedup": speedup, "same_ledger": same}, indent=2)
    )
    print(f"2 reconcilers reconcile {pulled.events:,} events {speedup:.2f}x as fast as one (target >= 1.6)")
    print(f"their ledgers {'hold the same decisions' if same else 'DIFFER: the two-reconciler run decided otherwise'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
