"""The floor (issue 17): a bare pipeline of the nightly run's shape with no business logic, on the same broker
and Kafka client, so that `end to end / floor` says how much of the run is our own code.

Per event it does the product's minimum I/O and nothing more: JSON statement → dict → fastavro encode →
produce → consume (partitions assigned, fetch.wait.max.ms 100) → decode → SQLite insert of the event and upsert
of one (learner, activity) row, one transaction per 2,000 → credit encode → produce.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from pipeline.kafka.interface import KafkaBackend, Message, publish
from pipeline.kafka.io import make_consumer, make_producer
from pipeline.kafka.topics import TopicSpec, ensure_topics

BATCH = 2_000

EVENT_SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "FloorEvent",
        "fields": [
            {"name": "statement_id", "type": "string"},
            {"name": "learner", "type": "string"},
            {"name": "activity_id", "type": "string"},
            {"name": "verb", "type": "string"},
            {"name": "timestamp", "type": "string"},
            {"name": "extensions", "type": {"type": "map", "values": "string"}},
        ],
    }
)
CREDIT_SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "FloorCredit",
        "fields": [
            {"name": "learner", "type": "string"},
            {"name": "activity_id", "type": "string"},
            {"name": "events", "type": "long"},
            {"name": "latest", "type": "string"},
        ],
    }
)
CREDIT_FIELDS = ("learner", "activity_id", "events", "latest")


def _encode(schema: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema, record)
    return buffer.getvalue()


def _event(statement: dict[str, Any]) -> dict[str, Any]:
    """Field picking only: what any pipeline must read from a statement to key and store it."""
    actor = statement.get("actor") or {}
    account = actor.get("account") or {}
    extensions = (statement.get("context") or {}).get("extensions") or {}
    return {
        "statement_id": statement["id"],
        "learner": str(account.get("name") or actor.get("mbox") or ""),
        "activity_id": str((statement.get("object") or {}).get("id", "")),
        "verb": str((statement.get("verb") or {}).get("id", "")),
        "timestamp": str(statement.get("timestamp", "")),
        "extensions": {str(k): str(v) for k, v in extensions.items()},
    }


def _ledger(path: Path) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    # The ledger's own pragmas (ledger/store.py), so the floor's SQLite costs what ours does.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE event (statement_id TEXT PRIMARY KEY, learner TEXT, activity_id TEXT, body BLOB)")
    connection.execute(
        "CREATE TABLE credit (learner TEXT, activity_id TEXT, events INTEGER, latest TEXT,"
        " PRIMARY KEY (learner, activity_id))"
    )
    return connection


def _store(connection: sqlite3.Connection, events: Sequence[tuple[dict[str, Any], bytes]]) -> list[tuple[Any, ...]]:
    """One transaction: the events, then one upsert per (learner, activity) they touch; the rows as stored."""
    pairs = sorted({(e["learner"], e["activity_id"]) for e, _ in events})
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT OR IGNORE INTO event VALUES (?, ?, ?, ?)",
        [(e["statement_id"], e["learner"], e["activity_id"], body) for e, body in events],
    )
    latest: dict[tuple[str, str], str] = {}
    counts: dict[tuple[str, str], int] = {}
    for e, _ in events:
        pair = (e["learner"], e["activity_id"])
        counts[pair] = counts.get(pair, 0) + 1
        latest[pair] = max(latest.get(pair, ""), e["timestamp"])
    connection.executemany(
        "INSERT INTO credit VALUES (?, ?, ?, ?) ON CONFLICT (learner, activity_id) DO UPDATE SET"
        " events = events + excluded.events, latest = max(latest, excluded.latest)",
        [(*pair, counts[pair], latest[pair]) for pair in pairs],
    )
    placeholders = ",".join("(?, ?)" for _ in pairs)
    rows = connection.execute(
        f"SELECT learner, activity_id, events, latest FROM credit WHERE (learner, activity_id) IN ({placeholders})",
        [value for pair in pairs for value in pair],
    ).fetchall()
    connection.execute("COMMIT")
    return rows


def run_floor(
    bootstrap: str, statements: Iterable[dict[str, Any]], workdir: Path, backend: KafkaBackend = "kafka-python"
) -> dict[str, Any]:
    """The floor over `statements`; its events/s and what it moved (so a reader can check it did the work)."""
    run = uuid.uuid4().hex[:8]
    events_topic, credits_topic = f"bench.floor.events.{run}", f"bench.floor.credits.{run}"
    ensure_topics(bootstrap, (TopicSpec(events_topic), TopicSpec(credits_topic)))
    served = [json.dumps(s) for s in statements]  # what an LRS page holds, before the clock starts
    connection = _ledger(workdir / "floor.db")
    producer = make_producer(bootstrap, client_id="bench-floor", backend=backend)
    started = time.perf_counter()
    for start in range(0, len(served), BATCH):
        messages: list[Message] = []
        for text in served[start : start + BATCH]:
            event = _event(json.loads(text))
            messages.append((f"{event['learner']}|{event['activity_id']}".encode(), _encode(EVENT_SCHEMA, event)))
        publish(producer, events_topic, messages)
    consumer = make_consumer(bootstrap, events_topic, f"bench-floor-{run}", BATCH, backend=backend)
    consumed = credits = 0
    for batch in consumer.batches():
        events = [(schemaless_reader(io.BytesIO(m.value), EVENT_SCHEMA, None), m.value) for m in batch]
        rows = _store(connection, events)
        consumer.commit(batch)
        credit_messages: list[Message] = [
            (f"{r[0]}|{r[1]}".encode(), _encode(CREDIT_SCHEMA, dict(zip(CREDIT_FIELDS, r, strict=True)))) for r in rows
        ]
        publish(producer, credits_topic, credit_messages)
        consumed += len(batch)
        credits += len(credit_messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    producer.close()
    connection.close()
    return {"floor_events": consumed, "floor_credits": credits, "floor_s": elapsed, "floor_per_s": consumed / elapsed}
