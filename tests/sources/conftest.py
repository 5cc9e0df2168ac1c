"""The shared test factory for source connectors: one harness per source kind, each driving its real sandbox
(or real files) the same way, so `test_source_contract.py` runs the same tests against every connector.

A harness seeds data, adds more, adds bad input, and says which events it expects by a natural key (the
statement or record id, or the learner's e-mail and the segment's start), so expectations come from the
data, not from the connector under test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from deploy.sandbox.base import SandboxServer, format_instant
from deploy.sandbox.file_drop import FileDrop
from deploy.sandbox.lrs import XapiLrs
from deploy.sandbox.provider_rest import ProviderRestApi
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from deploy.sandbox.webinar import WebinarReports
from ledger import tables as t
from ledger.checkpoints import checkpoint
from ledger.store import Ledger
from pipeline.config import SAMPLE_DIR, Settings
from pipeline.factory import codec_for
from pipeline.kafka.kafka_python import BatchConsumer
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages import nightly

PAGE_SIZE = 5
BASE = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
CHICAGO = ZoneInfo("America/Chicago")
TEN_MB = 10 * 1024 * 1024


def npi_for(index: int) -> str:
    """A made-up NPI with a valid CMS check digit (Luhn over 80840 + the first nine digits)."""
    first_nine = f"1{index:08d}"
    total = 0
    for position, char in enumerate(reversed("80840" + first_nine)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return first_nine + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class Learner:
    index: int

    @property
    def email(self) -> str:
        return f"learner{self.index:03d}@example.org"

    @property
    def npi(self) -> str:
        return npi_for(self.index + 7)

    @property
    def profession(self) -> str:
        return "MD" if self.index % 2 else "DO"

    @property
    def given(self) -> str:
        return f"Given{self.index}"

    @property
    def family(self) -> str:
        return f"Family{self.index}"


LEARNERS = [Learner(i) for i in range(40)]


class Harness(ABC):
    """One source kind driven through its sandbox. `server` is what faults are injected into."""

    kind: str
    name: str
    server: SandboxServer | None = None

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @abstractmethod
    def config(self) -> dict[str, Any]: ...

    @abstractmethod
    def seed(self) -> set[str]:
        """Load the first data set; the natural keys of the events it must yield."""

    @abstractmethod
    def add_more(self) -> set[str]:
        """Add records after a pull; the natural keys of the new events only."""

    @abstractmethod
    def add_bad(self) -> dict[str, str]:
        """Add unusable records; their expected dead letters as {source_ref: reason_code}."""

    @abstractmethod
    def key(self, event: dict[str, Any]) -> str: ...

    def start(self) -> None:
        if self.server is not None:
            self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


# -- xAPI -----------------------------------------------------------------------------------------------------


def statement(learner: Learner, stored: datetime, verb: str = "completed", **fields: Any) -> dict[str, Any]:
    prefix = "https://cmesync.org/xapi/ext/"
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "mbox": f"mailto:{learner.email}"},
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"},
        "object": {"objectType": "Activity", "id": "https://lms.example.org/activities/ACT-001"},
        "result": {"completion": True, "duration": "PT1H20M"},
        "context": {
            "extensions": {
                f"{prefix}npi": learner.npi,
                f"{prefix}profession": learner.profession,
                f"{prefix}given-name": learner.given,
                f"{prefix}family-name": learner.family,
            }
        },
        "timestamp": format_instant(stored - timedelta(minutes=2)),
        "stored": format_instant(stored),
        **fields,
    }


class XapiHarness(Harness):
    kind = "xapi"
    name = "lrs"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.lrs = XapiLrs()
        self.server = self.lrs
        self.sent: list[dict[str, Any]] = []

    def config(self) -> dict[str, Any]:
        return {
            "kind": "xapi",
            "name": self.name,
            "base_url": self.lrs.url,
            "username": self.lrs.username,
            "password": self.lrs.password,
            "page_size": PAGE_SIZE,
            "max_attempts": 10,
        }

    def seed(self) -> set[str]:
        # Every third statement shares its stored instant with the one before: the cursor must split ties.
        verbs = ["passed", "completed", "completed", "completed"]
        batch = [statement(LEARNERS[i], BASE + timedelta(minutes=i - i % 3 // 2), verbs[i % 4]) for i in range(22)]
        return self._add(batch)

    def add_more(self) -> set[str]:
        later = BASE + timedelta(days=2)
        batch = [statement(LEARNERS[i], later + timedelta(minutes=i)) for i in range(22, 28)]
        batch.append(
            statement(
                LEARNERS[22],
                later + timedelta(hours=1),
                verb="voided",
                object={"objectType": "StatementRef", "id": batch[0]["id"]},
            )
        )
        return self._add(batch) - {batch[0]["id"]}  # the voided statement is hidden by the LRS

    def add_bad(self) -> dict[str, str]:
        at = BASE + timedelta(days=3)
        learner = LEARNERS[30]
        cases = {
            "SCHEMA_INVALID": statement(learner, at, actor=None),
            "UNSUPPORTED_VERB": statement(learner, at + timedelta(seconds=1), verb="experienced"),
            "IMPLAUSIBLE_DURATION": statement(learner, at + timedelta(seconds=2), result={"duration": "P30D"}),
            "MISSING_IDENTITY": statement(
                learner,
                at + timedelta(seconds=3),
                actor={"objectType": "Agent", "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"},
                context={},
            ),
            "FIELD_TOO_LARGE": statement(
                learner, at + timedelta(seconds=4), actor={"mbox": "mailto:" + "a" * TEN_MB + "@example.org"}
            ),
            "INVALID_NPI": statement(
                learner,
                at + timedelta(seconds=5),
                context={"extensions": {"https://cmesync.org/xapi/ext/npi": "1234567890"}},
            ),
        }
        negative = statement(learner, at + timedelta(seconds=6), result={"duration": "-PT1H"})
        wrong_type = statement(learner, at + timedelta(seconds=7), timestamp=1763000000)
        self._add([*cases.values(), negative, wrong_type])
        expected = {f"statement:{s['id']}": code for code, s in cases.items()}
        expected[f"statement:{negative['id']}"] = "IMPLAUSIBLE_DURATION"
        expected[f"statement:{wrong_type['id']}"] = "SCHEMA_INVALID"
        return expected

    def key(self, event: dict[str, Any]) -> str:
        return event["event_id"]

    def _add(self, batch: list[dict[str, Any]]) -> set[str]:
        self.lrs.add(batch)
        self.sent += batch
        return {s["id"] for s in batch}


# -- webinar --------------------------------------------------------------------------------------------------

WEBINAR_ID = "84512340099"


def participant_row(learner: Learner | None, join: datetime, minutes: float, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"p{learner.index}" if learner else "",
        "user_id": str(uuid.uuid4().int % 10**8),
        "name": f"{learner.given} {learner.family}" if learner else "iPhone",
        "user_email": learner.email if learner else "",
        "join_time": format_instant(join).replace(".000", ""),
        "leave_time": format_instant(join + timedelta(minutes=minutes)).replace(".000", ""),
        "duration": int(minutes * 60),
        "registrant_id": f"rg-{learner.index}" if learner else "",
        "status": "in_meeting",
        **fields,
    }


def registrant(learner: Learner) -> dict[str, Any]:
    return {
        "id": f"rg-{learner.index}",
        "email": learner.email,
        "first_name": learner.given,
        "last_name": learner.family,
        "custom_questions": [
            {"title": "NPI", "value": learner.npi},
            {"title": "Credential", "value": learner.profession},
        ],
    }


class WebinarHarness(Harness):
    kind = "webinar"
    name = "webinars"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.reports = WebinarReports([{"id": WEBINAR_ID, "registrants": [registrant(x) for x in LEARNERS]}])
        self.server = self.reports
        self.instances = 0

    def config(self) -> dict[str, Any]:
        return {
            "kind": "webinar",
            "name": self.name,
            "base_url": self.reports.url,
            "token": self.reports.token,
            "page_size": PAGE_SIZE,
            "max_attempts": 10,
            "webinars": {WEBINAR_ID: "ACT-002"},
            "registrant_questions": {"NPI": "npi", "credential": "profession"},
        }

    def new_instance(self, rows: list[dict[str, Any]], day: int) -> str:
        self.instances += 1
        instance = f"inst-{self.instances}-{uuid.uuid4().hex[:8]}=="
        start = BASE + timedelta(days=day)
        self.reports.add_instance(
            WEBINAR_ID, {"uuid": instance, "start_time": format_instant(start), "participants": rows}
        )
        return instance

    def segments(self, learners: list[Learner], day: int) -> list[dict[str, Any]]:
        """Two segments per learner, first all first segments then all second ones, so one learner's
        segments sit on different pages; the second overlaps the first by a minute."""
        start = BASE + timedelta(days=day, hours=9)
        first = [participant_row(x, start + timedelta(minutes=n), 40) for n, x in enumerate(learners)]
        second = [participant_row(x, start + timedelta(minutes=n + 39), 50) for n, x in enumerate(learners)]
        return first + second

    def seed(self) -> set[str]:
        rows = self.segments(LEARNERS[:11], day=0)
        self.new_instance(rows, day=0)
        return {self._row_key(r) for r in rows}

    def add_more(self) -> set[str]:
        rows = self.segments(LEARNERS[11:14], day=1)
        self.new_instance(rows, day=1)
        return {self._row_key(r) for r in rows}

    def add_bad(self) -> dict[str, str]:
        at = BASE + timedelta(days=2, hours=9)
        learner = LEARNERS[20]
        rows: list[Any] = [
            "not a participant row",
            participant_row(learner, at, -15),
            participant_row(learner, at, 3 * 24 * 60),
            participant_row(None, at, 30),
            participant_row(learner, at, 30, join_time=1763000000),
            participant_row(learner, at, 30, user_email="x" * TEN_MB + "@example.org", registrant_id=""),
            participant_row(learner, at, 0),
        ]
        codes = [
            "SCHEMA_INVALID",
            "IMPLAUSIBLE_DURATION",
            "IMPLAUSIBLE_DURATION",
            "MISSING_IDENTITY",
            "SCHEMA_INVALID",
            "FIELD_TOO_LARGE",
            "IMPLAUSIBLE_DURATION",
        ]
        instance = self.new_instance(rows, day=2)
        truncated = self.new_instance([participant_row(learner, at + timedelta(days=1), 30)], day=3)
        self.reports.truncate_report(truncated)
        where = f"webinar {WEBINAR_ID} instance"
        expected = {
            f"{where} {instance} page {i // PAGE_SIZE + 1} row {i % PAGE_SIZE + 1}": code
            for i, code in enumerate(codes)
        }
        expected[f"{where} {truncated} page 1"] = "MALFORMED_PAGE"
        return expected

    def key(self, event: dict[str, Any]) -> str:
        return f"{event['learner']['email']}|{event['started_at'].astimezone(UTC).isoformat()}"

    @staticmethod
    def _row_key(row: dict[str, Any]) -> str:
        return f"{row['user_email']}|{datetime.fromisoformat(row['join_time']).isoformat()}"


# -- CSV drops ------------------------------------------------------------------------------------------------

CSV_HEADER = ["Attendee Email", "NPI Number", "First", "Last", "Role", "Session Code", "Scan In", "Scan Out"]


def csv_row(learner: Learner, scan_in: datetime, minutes: float) -> list[str]:
    local_in = scan_in.astimezone(CHICAGO)
    local_out = (scan_in + timedelta(minutes=minutes)).astimezone(CHICAGO)
    return [
        learner.email,
        learner.npi,
        learner.given,
        learner.family,
        learner.profession,
        "WS-7",
        local_in.strftime("%m/%d/%Y %I:%M %p"),
        local_out.strftime("%m/%d/%Y %I:%M %p"),
    ]


def csv_text(rows: list[list[str]], header: list[str] = CSV_HEADER) -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if "," in value or '"' in value else value

    return "".join(",".join(cell(v) for v in row) + "\r\n" for row in [header, *rows])


class CsvHarness(Harness):
    """A drop read from a directory (`via="directory"`) or through the sandbox HTTP listing (`via="http"`)."""

    kind = "csv_drop"
    name = "signin"

    def __init__(self, tmp_path: Path, via: str = "http") -> None:
        super().__init__(tmp_path)
        self.via = via
        self.drop = tmp_path / "drop"
        self.drop.mkdir()
        self.files = 0
        self.server = FileDrop(self.drop) if via == "http" else None

    def config(self) -> dict[str, Any]:
        location = {"base_url": self.server.url} if self.server else {"directory": str(self.drop)}
        return {
            "kind": "csv_drop",
            "name": self.name,
            **location,
            "page_size": PAGE_SIZE,
            "max_attempts": 10,
            "timezone": "America/Chicago",
            "activities": {"WS-7": "ACT-002"},
            "fields": {
                "email": "Attendee Email",
                "npi": "NPI Number",
                "given_name": "First",
                "family_name": "Last",
                "profession": "Role",
                "activity": "Session Code",
                "started_at": "Scan In",
                "ended_at": "Scan Out",
            },
        }

    def write(self, name: str, content: bytes) -> str:
        self.files += 1
        (self.drop / name).write_bytes(content)
        return name

    def rows(self, learners: list[Learner], day: int) -> list[list[str]]:
        start = BASE + timedelta(days=day, hours=15)
        return [csv_row(x, start + timedelta(minutes=n), 45 + n) for n, x in enumerate(learners)]

    def seed(self) -> set[str]:
        first = self.rows(LEARNERS[:9], day=0)
        second = self.rows(LEARNERS[9:17], day=1)
        self.write("day-1.csv", b"\xef\xbb\xbf" + csv_text(first).encode())
        self.write("day-2.csv", csv_text(second).encode("latin-1"))
        return {self._row_key(r) for r in first + second}

    def add_more(self) -> set[str]:
        third = self.rows(LEARNERS[17:23], day=2)
        self.write("day-3.csv", csv_text(third).encode())
        # The first file again under a new name: same bytes, nothing new.
        shutil.copy(self.drop / "day-1.csv", self.drop / "day-1 (sent again).csv")
        return {self._row_key(r) for r in third}

    def add_bad(self) -> dict[str, str]:
        good = self.rows(LEARNERS[30:32], day=5)
        learner = LEARNERS[32]
        scan = BASE + timedelta(days=5, hours=16)
        backwards = csv_row(learner, scan, -20)
        bad_npi = csv_row(learner, scan, 20)
        bad_npi[1] = "1234567890"
        bad_time = csv_row(learner, scan, 20)
        bad_time[6] = "half past nine"
        huge = csv_row(learner, scan, 20)
        huge[2] = "x" * TEN_MB
        no_identity = csv_row(learner, scan, 20)
        no_identity[0], no_identity[1] = "", ""
        lines = [
            csv_text([good[0]]).rstrip("\r\n"),  # header + line 2
            ",".join(backwards),  # 3
            ",".join(bad_npi),  # 4
            ",".join(bad_time),  # 5
            ",".join(huge),  # 6
            ",".join(no_identity),  # 7
            ",".join(good[1][:5]),  # 8: too few cells
            '"unclosed,' + ",".join(good[1][1:]),  # 9: a quote never closed
            ",".join(good[1]),  # 10: still read after the broken ones
        ]
        self.write("bad.csv", ("\r\n".join(lines) + "\r\n").encode())
        self.write("utf16.csv", csv_text(good).encode("utf-16"))
        self.write("other-layout.csv", csv_text(good, ["Email", "Start", "End"]).encode())
        return {
            "bad.csv:3": "IMPLAUSIBLE_DURATION",
            "bad.csv:4": "INVALID_NPI",
            "bad.csv:5": "SCHEMA_INVALID",
            "bad.csv:6": "FIELD_TOO_LARGE",
            "bad.csv:7": "MISSING_IDENTITY",
            "bad.csv:8": "MALFORMED_ROW",
            "bad.csv:9": "MALFORMED_ROW",
            "utf16.csv:1": "ENCODING_INVALID",
            "other-layout.csv:1": "UNMAPPED_HEADER",
        }

    def key(self, event: dict[str, Any]) -> str:
        return f"{event['learner']['email']}|{event['started_at'].astimezone(UTC).isoformat()}"

    @staticmethod
    def _row_key(row: list[str]) -> str:
        scan_in = datetime.strptime(row[6], "%m/%d/%Y %I:%M %p").replace(tzinfo=CHICAGO)
        return f"{row[0]}|{scan_in.astimezone(UTC).isoformat()}"


# -- provider REST --------------------------------------------------------------------------------------------


def rest_record(index: int, who: Learner, updated: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"rec-{index:04d}",
        "updated_at": format_instant(updated),
        "status": "completed",
        "completed_at": format_instant(updated - timedelta(minutes=3)),
        "course": {"code": "SEPSIS-ED"},
        "learner": {
            "npi": who.npi,
            "email": who.email,
            "first_name": who.given,
            "last_name": who.family,
            "credential": who.profession,
        },
        "credits_claimed": None,
        **fields,
    }


class RestHarness(Harness):
    kind = "provider_rest"
    name = "provider"

    def __init__(self, tmp_path: Path, pagination: str = "cursor") -> None:
        super().__init__(tmp_path)
        self.pagination = pagination
        self.api = ProviderRestApi(pagination=pagination)  # type: ignore[arg-type]
        self.server = self.api

    def config(self) -> dict[str, Any]:
        return {
            "kind": "provider_rest",
            "name": self.name,
            "base_url": self.api.url,
            "token": self.api.token,
            "page_size": PAGE_SIZE,
            "max_attempts": 10,
            "pagination": self.pagination,
            "kinds": {"completed": "COMPLETED", "passed": "COMPLETED"},
            "activities": {"SEPSIS-ED": "ACT-001"},
            "fields": {
                "event_id": "id",
                "kind": "status",
                "occurred_at": "completed_at",
                "activity": "course.code",
                "npi": "learner.npi",
                "email": "learner.email",
                "given_name": "learner.first_name",
                "family_name": "learner.last_name",
                "profession": "learner.credential",
                "claimed_amount": "credits_claimed",
            },
        }

    def seed(self) -> set[str]:
        # Records 3k and 3k+1 share one updated_at: the watermark must split ties.
        records = [rest_record(i, LEARNERS[i], BASE + timedelta(minutes=i - i % 3 // 2)) for i in range(21)]
        self.api.add(records)
        return {r["id"] for r in records}

    def add_more(self) -> set[str]:
        later = BASE + timedelta(days=2)
        records = [rest_record(i, LEARNERS[i], later + timedelta(minutes=i)) for i in range(21, 27)]
        self.api.add(records)
        return {r["id"] for r in records}

    def add_bad(self) -> dict[str, str]:
        at = BASE + timedelta(days=4)
        learner = LEARNERS[30]
        cases: list[tuple[str, dict[str, Any]]] = [
            ("SCHEMA_INVALID", rest_record(900, learner, at, completed_at=12)),
            ("UNSUPPORTED_KIND", rest_record(901, learner, at, status="in_progress")),
            ("MISSING_IDENTITY", rest_record(902, learner, at, learner={"first_name": "No", "last_name": "Ids"})),
            ("SCHEMA_INVALID", rest_record(903, learner, at, credits_claimed=-1)),
            ("FIELD_TOO_LARGE", rest_record(904, learner, at, course={"code": "S" * TEN_MB})),
            ("SCHEMA_INVALID", rest_record(905, learner, at, learner={"npi": ["1", "2"], "email": learner.email})),
            ("INVALID_NPI", rest_record(906, learner, at, learner={"npi": "1234567890"})),
        ]
        self.api.add([record for _, record in cases])
        expected = {f"/api/v1/completions record {record['id']}": code for code, record in cases}
        # Not an object at all: it has no id, so it is found again by a digest of its content.
        self.api.add(["not a record"])
        digest = hashlib.sha256(json.dumps("not a record").encode()).hexdigest()[:16]
        expected[f"/api/v1/completions record sha256:{digest}"] = "SCHEMA_INVALID"
        return expected

    def key(self, event: dict[str, Any]) -> str:
        return event["event_id"]


HARNESSES: dict[str, Callable[[Path], Harness]] = {
    "xapi": XapiHarness,
    "webinar": WebinarHarness,
    "csv_drop-http": lambda tmp: CsvHarness(tmp, "http"),
    "csv_drop-directory": lambda tmp: CsvHarness(tmp, "directory"),
    "provider_rest-cursor": lambda tmp: RestHarness(tmp, "cursor"),
    "provider_rest-page": lambda tmp: RestHarness(tmp, "page"),
}


@pytest.fixture
def schema_registry() -> Iterator[SchemaRegistrySandbox]:
    with SchemaRegistrySandbox() as registry:
        yield registry


@pytest.fixture(params=list(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    built = HARNESSES[request.param](tmp_path)
    built.start()
    try:
        yield built
    finally:
        built.stop()


@dataclass
class Pipeline:
    """The real pull and reconcile stages over one source, a fresh broker and a fresh ledger."""

    settings: Settings
    source_name: str

    def pull(self) -> nightly.PullStats:
        return nightly.pull(self.settings, self.source_name)

    def reconcile(self) -> nightly.IntakeStats:
        return nightly.reconcile(self.settings)

    def topic_events(self) -> list[dict[str, Any]]:
        """Every AttendanceEvent on the topic, in order, read under a throw-away consumer group."""
        codec = codec_for(self.settings, "attendance_event")
        consumer = BatchConsumer(self.settings.kafka_bootstrap, ATTENDANCE_TOPIC, f"test-{uuid.uuid4().hex}")
        try:
            return [codec.decode(m.value) for batch in consumer.batches() for m in batch]
        finally:
            consumer.close()

    def ledger(self) -> Ledger:
        return Ledger(self.settings.ledger_url)

    def checkpoint(self) -> str | None:
        with self.ledger() as ledger:
            return checkpoint(ledger, self.source_name)

    def dead_letters(self) -> dict[str, str]:
        with self.ledger() as ledger, ledger.engine.connect() as conn:
            rows = conn.execute(select(t.dead_letters.c.source_ref, t.dead_letters.c.reason_code))
            return {r.source_ref: r.reason_code for r in rows}

    def ledger_event_ids(self) -> list[str]:
        with self.ledger() as ledger, ledger.engine.connect() as conn:
            return list(conn.scalars(select(t.events.c.event_id).where(t.events.c.source == self.source_name)))

    def dump(self, path: Path) -> Path:
        path.write_text(json.dumps(self.settings.model_dump(mode="json")))
        return path


@pytest.fixture
def pipeline_for(
    kafka_bootstrap: str, schema_registry: SchemaRegistrySandbox, ledger_url: str
) -> Callable[[dict[str, Any]], Pipeline]:
    """The pipeline around one source, given that source's config (as in `cmesync.toml`)."""

    def build(source_config: dict[str, Any]) -> Pipeline:
        settings = Settings(
            kafka_bootstrap=kafka_bootstrap,
            schema_registry_url=schema_registry.url,
            ledger_url=ledger_url,
            catalog_path=SAMPLE_DIR / "catalog.json",
            sources=[source_config],
            registries=[],
        )
        nightly.prepare(settings)
        return Pipeline(settings, source_config["name"])

    return build
