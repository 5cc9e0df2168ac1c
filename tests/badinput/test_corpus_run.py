"""Run tier: the whole corpus served by the sandboxes (and pushed onto the broker), a few good records beside
it, and the nightly run's own stage functions (pull every source, reconcile, publish) on SQLite and
PostgreSQL. The run completes; every bad case is one dead letter with its expected code; a second run adds
none; the good records are credited; no event row comes from a bad case."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlalchemy import func, select

from deploy.sandbox.base import SandboxServer
from deploy.sandbox.file_drop import FileDrop
from deploy.sandbox.lrs import STATEMENTS_PATH, XapiLrs
from deploy.sandbox.provider_rest import COMPLETIONS_PATH, ProviderRestApi
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from deploy.sandbox.webinar import WebinarReports
from ledger import tables as t
from ledger.store import Ledger
from pipeline.config import SAMPLE_DIR, Settings
from pipeline.factory import codec_for
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages import nightly
from schemas.codec import SchemaInvalid
from tests.badinput.corpus import (
    CSV_HEADER,
    WEBINAR_ID,
    Case,
    Pushed,
    corpus,
    csv_file,
    good_csv_line,
    good_participant,
    good_pushed_event,
    good_rest_record,
    good_statement,
    source_config,
)

pytestmark = pytest.mark.integration

PAGE_SIZE = 100
GOOD = 3  # good records per source kind, each of its own learner (indices 9000 + 10 * kind + i)
_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass
class Served:
    """The sandboxes holding the corpus, the sources reading them, and where each case must land."""

    servers: list[SandboxServer] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[tuple[str, str], str] = field(default_factory=dict)  # (source, source_ref) → reason code
    good: Counter[str] = field(default_factory=Counter)  # source → good events

    def add(self, server: SandboxServer, kind: str, name: str, secret: str) -> SandboxServer:
        server.start()
        self.servers.append(server)
        self.sources.append(source_config(kind, name, server.url, secret, page_size=PAGE_SIZE))
        return server


def _usable_id(value: Any) -> bool:
    """Whether the connector finds the record again by its id (else by its position in the walk)."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    return text is not None and len(text) <= 100 and text.isprintable()


def content_ref(record: Any) -> str:
    content = json.dumps(record, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
    return f"{COMPLETIONS_PATH} record sha256:{hashlib.sha256(content).hexdigest()[:16]}"


def _position(walk: str, index: int) -> str:
    return f"{walk} page {index // PAGE_SIZE + 1} item {index % PAGE_SIZE + 1}"


def serve_xapi(served: Served, cases: list[Case]) -> None:
    records = [c for c in cases if c.level == "record"]
    statements = [c.payload for c in records] + [good_statement(9000 + i) for i in range(GOOD)]
    served.add(XapiLrs(statements), "xapi", "corpus-xapi", "lrs-demo-secret")
    for index, case in enumerate(records):
        statement_id = case.payload["id"]
        ref = f"statement:{statement_id}" if _usable_id(statement_id) else _position("statements", index)
        served.expected[("corpus-xapi", ref)] = case.expected
    served.good["corpus-xapi"] = GOOD
    for number, case in enumerate(c for c in cases if c.level == "page"):
        lrs = XapiLrs([good_statement(9100 + number)])
        lrs.broken_bodies[STATEMENTS_PATH] = case.payload
        served.add(lrs, "xapi", f"corpus-xapi-page-{number}", "lrs-demo-secret")
        served.expected[(f"corpus-xapi-page-{number}", "statements page 1")] = case.expected


def serve_rest(served: Served, cases: list[Case]) -> None:
    records = [c for c in cases if c.level == "record"]
    good = [good_rest_record(9010 + i) for i in range(GOOD)]
    api = ProviderRestApi([c.payload for c in records] + good)
    served.add(api, "provider_rest", "corpus-rest", api.token)
    for case in records:
        record_id = case.payload.get("id") if isinstance(case.payload, dict) else None
        ref = f"{COMPLETIONS_PATH} record {record_id}" if _usable_id(record_id) else content_ref(case.payload)
        served.expected[("corpus-rest", ref)] = case.expected
    served.good["corpus-rest"] = GOOD
    for number, case in enumerate(c for c in cases if c.level == "page"):
        broken = ProviderRestApi([good_rest_record(9100 + number)])
        broken.broken_bodies[COMPLETIONS_PATH] = case.payload
        served.add(broken, "provider_rest", f"corpus-rest-page-{number}", broken.token)
        served.expected[(f"corpus-rest-page-{number}", f"{COMPLETIONS_PATH} page 1")] = case.expected


def serve_webinar(served: Served, cases: list[Case]) -> None:
    records = [c for c in cases if c.level == "record"]
    good = [good_participant(9020 + i) for i in range(GOOD)]
    registrants = [r["registrant"] for r in [*(c.payload for c in records), *good] if r["registrant"]]
    reports = WebinarReports([{"id": WEBINAR_ID, "registrants": registrants}])
    rows = [c.payload["participant"] for c in records] + [g["participant"] for g in good]
    reports.add_instance(WEBINAR_ID, {"uuid": "corpus-rows", "start_time": "2026-11-12T09:00Z", "participants": rows})
    where = f"webinar {WEBINAR_ID} instance"
    for index, case in enumerate(records):
        page, row = index // PAGE_SIZE + 1, index % PAGE_SIZE + 1
        served.expected[("corpus-webinar", f"{where} corpus-rows page {page} row {row}")] = case.expected
    for number, case in enumerate(c for c in cases if c.level == "page"):
        instance = f"corpus-page-{number}"
        row = good_participant(9100 + number)["participant"]
        reports.add_instance(WEBINAR_ID, {"uuid": instance, "start_time": "2026-11-13T09:00Z", "participants": [row]})
        reports.broken_bodies[f"/v2/report/webinars/{instance}/participants"] = case.payload
        served.expected[("corpus-webinar", f"{where} {instance} page 1")] = case.expected
    served.add(reports, "webinar", "corpus-webinar", reports.token)
    served.good["corpus-webinar"] = GOOD


def serve_csv(served: Served, cases: list[Case], drop: Path) -> None:
    by_category: dict[str, list[Case]] = {}
    for case in cases:
        if case.level == "file":
            (drop / f"{case.case_id}.csv").write_bytes(case.payload)
            line = 2 if case.expected == "MALFORMED_ROW" else 1
            served.expected[("corpus-csv", f"{case.case_id}.csv:{line}")] = case.expected
        else:
            by_category.setdefault(case.category, []).append(case)
    for category, listed in by_category.items():
        name = f"corpus-{category}.csv"
        line = 2
        for case in listed:
            served.expected[("corpus-csv", f"{name}:{line}")] = case.expected
            line += 1 + len(_BREAK.findall(case.payload))
        (drop / name).write_bytes(csv_file([c.payload for c in listed]))
    (drop / "good.csv").write_bytes(csv_file([good_csv_line(9030 + i) for i in range(GOOD)]))
    assert CSV_HEADER[0] == "Email"
    served.add(FileDrop(drop, token="drop-token"), "csv_drop", "corpus-csv", "drop-token")
    served.good["corpus-csv"] = GOOD


def push(settings: Settings, served: Served, cases: list[Case]) -> None:
    """Every push case and a few good events straight onto the topic, as a provider's producer would."""
    codec = codec_for(settings, "attendance_event")
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")  # the provider's own client
    try:
        for case in cases:
            assert isinstance(case.payload, Pushed)
            value = case.payload.value(codec.schema_id)
            sent = producer.send(ATTENDANCE_TOPIC, key=b"push", value=value).get(timeout=30)
            try:
                event = codec.decode(value)
                source, ref = event["source"], event["source_ref"]
            except SchemaInvalid:
                event = None
            if event is None:
                source, ref = codec.subject, f"kafka {sent.partition}:{sent.offset}"
            served.expected[(source, ref)] = case.expected
        for index in range(GOOD):
            producer.send(ATTENDANCE_TOPIC, key=b"push", value=codec.encode(good_pushed_event(9040 + index)))
        producer.flush(timeout=30)
    finally:
        producer.close()
    served.good["provider-push"] = GOOD


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    cases = corpus()
    result = Served()
    drop = tmp_path / "drop"
    drop.mkdir()
    try:
        serve_xapi(result, [c for c in cases if c.kind == "xapi"])
        serve_rest(result, [c for c in cases if c.kind == "provider_rest"])
        serve_webinar(result, [c for c in cases if c.kind == "webinar"])
        serve_csv(result, [c for c in cases if c.kind == "csv_drop"], drop)
        yield result
    finally:
        for server in result.servers:
            server.stop()


def run_once(settings: Settings) -> None:
    """The nightly run's stages in its order: every pull, then reconcile, then publish."""
    for source in settings.sources:
        nightly.pull(settings, source.name)
    nightly.reconcile(settings)
    nightly.publish(settings)


def ledger_rows(url: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], int]:
    """(dead letters as (source, ref, code), events as (source, ref), learners with a credit)."""
    with Ledger(url) as ledger, ledger.engine.connect() as conn:
        d, e, c = t.dead_letters.c, t.events.c, t.credits.c
        dead = [tuple(r) for r in conn.execute(select(d.source, d.source_ref, d.reason_code))]
        events = [tuple(r) for r in conn.execute(select(e.source, e.source_ref))]
        credited = conn.scalar(select(func.count(func.distinct(c.learner_id))))
        return dead, events, int(credited or 0)  # type: ignore[return-value]


def test_given_the_whole_corpus_served_when_the_nightly_stages_run_twice_then_each_case_is_one_dead_letter(
    served: Served, kafka_bootstrap: str, ledger_url: str
) -> None:
    with SchemaRegistrySandbox() as registry:
        settings = Settings(
            kafka_bootstrap=kafka_bootstrap,
            schema_registry_url=registry.url,
            ledger_url=ledger_url,
            catalog_path=SAMPLE_DIR / "catalog.json",
            sources=served.sources,
            registries=[],
        )
        nightly.prepare(settings)
        push(settings, served, [c for c in corpus() if c.kind == "push"])

        run_once(settings)
        dead, events, credited = ledger_rows(ledger_url)
        run_once(settings)
        dead_again, events_again, _ = ledger_rows(ledger_url)

    found = Counter((source, ref) for source, ref, _ in dead)
    codes = {(source, ref): code for source, ref, code in dead}
    missing = [key for key in served.expected if key not in codes]
    wrong = {key: (codes[key], code) for key, code in served.expected.items() if key in codes and codes[key] != code}
    assert not missing, missing[:10]
    assert not wrong, list(wrong.items())[:10]
    assert all(found[key] == 1 for key in served.expected)
    assert len(dead) == len(served.expected)  # nothing dead-lettered that is not a case
    assert sorted(dead_again) == sorted(dead) and sorted(events_again) == sorted(events)
    assert Counter(source for source, _ in events) == served.good
    assert not set(events) & set(served.expected)  # no partial writes: no event row from a bad case
    assert credited == sum(served.good.values())
