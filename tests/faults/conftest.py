"""The fault suite's world: the real `cmesync run` (in a subprocess where it is killed at a crash point or runs
alongside the test, else in this process), against an embedded Tansu broker this test owns (so it can pause it),
the sandboxes started in this process, and the ledger on SQLite and PostgreSQL; Prefect is the session's test
server, so a run costs its work, not a server start.

Every scenario ends with `settle()`: the run's final state, checked for internal consistency (registries ==
cme.credits.v1 latest per key == ledger, nothing unpublished or undelivered, no credit held twice anywhere), then
reduced to what must not depend on how the run got there, for comparison with the clean reference run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bench.generate import EXT
from bench.generate import statements as generated_statements
from deploy.broker import EmbeddedBroker
from deploy.sandbox.stack import DEFAULT_CSV_DROPS, DEFAULT_STATEMENTS, SandboxStack
from ledger import tables as t
from ledger.store import Ledger
from pipeline.config import Settings
from tests import in_process
from tests.final_state import (
    ama_active,
    cebroker_active,
    hr_active,
    latest_per_key,
    ledger_expects,
    ledger_latest,
    stream_messages,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).with_name("cmesync.toml")
TODAY = date(2026, 11, 23)
GENERATED = 120  # xAPI statements on top of the sample's: ~30 more learners, 16 LRS pages, 8 reconcile batches
REGISTRIES = ("ama-pra", "cebroker", "employer-hr")

# What a credit is, independent of the run that made it: whose (the learner block), which activity and type.
NaturalKey = tuple[str | None, ...]
Content = tuple[str, str, str]  # status, amount, completed_on


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -9

    def counts(self) -> dict[str, int]:
        assert self.returncode == 0, f"run failed ({self.returncode}):\n{self.stderr[-3000:]}"
        counts: dict[str, int] = json.loads(self.stdout)
        return counts


@dataclass(frozen=True)
class Outcome:
    """The part of a final state that a crash, a pause or a retry must not change."""

    credits: dict[NaturalKey, Content]
    held: dict[str, dict[NaturalKey, Content]]  # registry → its active holdings
    open_dead_letters: frozenset[tuple[str, str, str, str]]  # stage, source, source_ref, reason code
    # The HR export files' rows without record ids, sorted (a row twice shows twice); compared where a scenario
    # touches the export: `outcome.exported == reference.exported`.
    exported: tuple[tuple[str, ...], ...] = field(default=(), compare=False)


class World:
    """One scenario's broker, sandboxes, ledger and config file; `run()` is `cmesync run` in a subprocess."""

    def __init__(self, tmp: Path, ledger_url: str, broker: EmbeddedBroker, stack: SandboxStack) -> None:
        self.tmp = tmp
        self.ledger_url = ledger_url
        self.broker = broker
        self.stack = stack
        self.config_path = tmp / "cmesync.toml"
        self.ledger = Ledger(ledger_url)
        self.removed_by_hand: set[str] = set()  # record ids an operator deleted at a registry: resubmitted, rightly
        self.write_config()

    def write_config(
        self,
        *,
        ledger_url: str | None = None,
        max_attempts: int = 6,
        retry_backoff_s: float = 0.2,
        provider_pagination: str = "cursor",
    ) -> None:
        s = self.stack
        values = {
            "kafka_bootstrap": self.broker.bootstrap,
            "schema_registry_url": s.schema_registry.url,
            "ledger_url": ledger_url or self.ledger_url,
            "tmp": str(self.tmp),
            "lrs": s.lrs.url,
            "webinar": s.webinar.url,
            "file_drop": s.file_drop.url,
            "provider_rest": s.provider_rest.url,
            "provider_pagination": provider_pagination,
            "ama": s.ama.url,
            "cebroker": s.cebroker.url,
            "hr": s.hr.url,
            "max_attempts": str(max_attempts),
            "retry_backoff_s": str(retry_backoff_s),
        }
        text = TEMPLATE.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(f"{{{key}}}", value)
        self.config_path.write_text(text, encoding="utf-8")

    def env(self, crash_at: str | None) -> dict[str, str]:
        from prefect.settings import PREFECT_API_URL

        env = {k: v for k, v in os.environ.items() if not k.startswith("CMESYNC_")}
        env.update(
            PREFECT_API_URL=str(PREFECT_API_URL.value()),
            PREFECT_HOME=str(self.tmp / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PYTHONPATH=str(REPO),
        )
        if crash_at:
            env["CMESYNC_CRASH_AT"] = crash_at
        return env

    def start(self, crash_at: str | None = None) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "flows.cli", "run", "--config", str(self.config_path), "--json"]
        return subprocess.Popen(
            command, cwd=REPO, env=self.env(crash_at), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(self, process: subprocess.Popen[str], timeout_s: float = 300) -> RunResult:
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            raise AssertionError(f"cmesync run did not end within {timeout_s}s:\n{stderr[-3000:]}") from None
        return RunResult(process.returncode, stdout, stderr)

    def run(self, crash_at: str | None = None, timeout_s: float = 300) -> RunResult:
        """`cmesync run`: in a process of its own when it is to be SIGKILLed at `crash_at`, else in this process
        (tests/in_process.py), which spares the ~2-3 s of starting Python and importing Prefect per run."""
        if crash_at:
            return self.finish(self.start(crash_at), timeout_s)
        done = in_process.cmesync("run", "--config", str(self.config_path), "--json", cwd=REPO, env=self.env(None))
        return RunResult(done.returncode, done.stdout, done.stderr)

    def settle(self) -> Outcome:
        """Check the final state for consistency and return the part to compare with the reference."""
        settings = Settings.load(self.config_path)
        latest = ledger_latest(self.ledger)
        with self.ledger.engine.connect() as conn:
            versions = conn.execute(select(t.credits.c.record_id, t.credits.c.version)).all()
            unpublished = conn.scalar(
                select(func.count()).select_from(t.outbox).where(t.outbox.c.published_at.is_(None))
            )
            dead = conn.execute(
                select(t.dead_letters.c.stage, t.dead_letters.c.source, t.dead_letters.c.source_ref)
                .add_columns(t.dead_letters.c.reason_code)
                .where(t.dead_letters.c.resolved_at.is_(None))
            ).all()
        per_record = Counter(record_id for record_id, _ in versions)
        assert sorted(versions) == sorted((rid, v) for rid, n in per_record.items() for v in range(1, n + 1)), (
            "credit versions must run 1..n per record, each once"
        )
        assert unpublished == 0, "outbox rows left unpublished"

        stream = latest_per_key(stream_messages(self.broker.bootstrap, settings))
        assert {rid: summary(r) for rid, r in stream.items()} == {rid: summary(r) for rid, r in latest.items()}

        natural = {rid: natural_key(record) for rid, record in latest.items()}
        duplicated = [key for key, n in Counter(natural.values()).items() if n > 1]
        assert not duplicated, f"one credit under several record ids: {duplicated}"

        readers = {"ama-pra": ama_active, "cebroker": cebroker_active, "employer-hr": hr_active}
        held: dict[str, dict[NaturalKey, Content]] = {}
        for registry, read in readers.items():
            active = read(self.stack)
            assert active == ledger_expects(self.ledger, registry), f"{registry} holds other than the ledger expects"
            held[registry] = {
                natural[rid]: ("AWARDED", f"{amount:.2f}", completed.isoformat())
                for rid, (_, amount, completed) in active.items()
            }
        self.assert_nothing_held_twice()
        return Outcome(
            credits={natural[rid]: content(r) for rid, r in latest.items()},
            held=held,
            open_dead_letters=frozenset((d.stage, d.source, d.source_ref, d.reason_code) for d in dead),
            exported=self.exported(),
        )

    def exported(self) -> tuple[tuple[str, ...], ...]:
        rows = [row for path in sorted((self.tmp / "exports").glob("*.csv")) for row in read_csv(path)]
        event_ids = [row["event_id"] for row in rows]
        assert len(event_ids) == len(set(event_ids)), "an HR export holds one event twice"
        columns = ("employee_id", "activity_id", "credit_type", "version", "status", "amount", "completed_on")
        return tuple(sorted(tuple(row[c] for c in columns) for row in rows))

    def assert_nothing_held_twice(self) -> None:
        """No registry holds one credit twice, nor took one submission twice (receipts are per submission)."""
        ama = self.stack.ama.holdings().values()
        ama_keys = [
            (h.get("npi") or h.get("board_id"), h["activity_id"], h["credit_type"])
            for h in ama
            if h["status"] == "AWARDED"
        ]
        cebroker_keys = [
            tuple(row[f] for f in ("license", "cebroker_state", "licensee_profession", "id_course", "cd_subject_area"))
            for row in self.stack.cebroker.active_rows().values()
        ]
        hr_keys = [
            (h["employee_id"], h["activity_id"], h["credit_type"])
            for h in self.stack.hr.holdings().values()
            if h["status"] == "AWARDED"
        ]
        for registry, keys in (("ama-pra", ama_keys), ("cebroker", cebroker_keys), ("employer-hr", hr_keys)):
            twice = [key for key, n in Counter(keys).items() if n > 1]
            assert not twice, f"{registry} holds a credit twice: {twice}"
        removed = self.removed_by_hand
        submissions = (
            ("ama-pra", [a["idempotency_key"] for a in self.stack.ama.accepted if a["record_id"] not in removed]),
            ("cebroker", [r["external_ref"] for r in self.stack.cebroker.reported]),
            ("employer-hr", [h["event_id"] for h in self.stack.hr.applied]),
        )
        for registry, keys in submissions:
            assert len(keys) == len(set(keys)), f"{registry} accepted one submission twice"

    def close(self) -> None:
        self.ledger.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def summary(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["version"], record["status"], f"{record['amount']:.2f}", record["completed_on"].isoformat())


def content(record: dict[str, Any]) -> Content:
    return (record["status"], f"{record['amount']:.2f}", record["completed_on"].isoformat())


def natural_key(record: dict[str, Any]) -> NaturalKey:
    learner = record["learner"]
    who = tuple(learner.get(f) for f in ("npi", "licence_number", "licence_state", "board_id", "family_name"))
    return (*who, record["activity_id"], record["credit_type"])


def statements_file(tmp: Path) -> Path:
    """The sample statements plus generated ones: tens of learners, every registry, voids and bad records."""
    path = tmp / "statements.json"
    generated = [nursing(statement) for statement in generated_statements(GENERATED, seed=11)]
    statements = json.loads(DEFAULT_STATEMENTS.read_text(encoding="utf-8")) + generated
    path.write_text(json.dumps(statements), encoding="utf-8")
    return path


def nursing(statement: dict[str, Any]) -> dict[str, Any]:
    """Generated nurses get a licence, and their enduring completions a nursing activity (ANCC credit), so that
    CE Broker has credits to hold as well."""
    extensions = statement.get("context", {}).get("extensions", {})
    profession = extensions.get(f"{EXT}profession")
    if profession not in ("RN", "NP"):
        return statement
    number = int(extensions[f"{EXT}family-name"].removeprefix("Family"))
    extensions[f"{EXT}licence-number"] = f"{profession}{number:07d}"
    extensions[f"{EXT}licence-state"] = "FL"
    activity = statement["object"]
    if not activity["id"].endswith("/ACT-002"):
        activity["id"] = activity["id"].rsplit("/", 1)[0] + "/ACT-007"
    return statement


def csv_drops(tmp: Path) -> Path:
    """A drop directory of our own, seeded with the sample files, that a scenario may drop more files into."""
    directory = tmp / "csv_drops"
    shutil.copytree(DEFAULT_CSV_DROPS, directory)
    return directory


@pytest.fixture
def world_factory(prefect_harness: None) -> Iterator[Callable[[Path, str], World]]:
    """Builds worlds and stops everything they started, in reverse order."""
    started: list[tuple[World, EmbeddedBroker, SandboxStack]] = []

    def build(tmp: Path, ledger_url: str) -> World:
        broker = EmbeddedBroker().start()
        try:
            stack = SandboxStack(statements_file(tmp), today=lambda: TODAY)
            stack.file_drop.directory = csv_drops(tmp)
            stack.start()
        except BaseException:
            broker.stop()
            raise
        world = World(tmp, ledger_url, broker, stack)
        started.append((world, broker, stack))
        return world

    yield build
    for world, broker, stack in reversed(started):
        world.close()
        stack.stop()
        broker.stop()


@pytest.fixture
def world(world_factory: Callable[[Path, str], World], tmp_path: Path, ledger_url: str) -> World:
    return world_factory(tmp_path, ledger_url)


@pytest.fixture(scope="session")
def reference(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The final state of one clean run, with nothing going wrong (on SQLite; the content is database-free)."""
    tmp = tmp_path_factory.mktemp("reference")
    broker = EmbeddedBroker().start()
    stack = SandboxStack(statements_file(tmp), today=lambda: TODAY)
    stack.file_drop.directory = csv_drops(tmp)
    stack.start()
    world = World(tmp, f"sqlite:///{tmp / 'ledger.db'}", broker, stack)
    try:
        counts = world.run().counts()
        assert counts["delivered"] > 0 and counts["delivery_failed"] == 0
        outcome = world.settle()
    finally:
        world.close()
        stack.stop()
        broker.stop()
    assert all(outcome.held.values()), {registry: len(held) for registry, held in outcome.held.items()}
    return outcome
