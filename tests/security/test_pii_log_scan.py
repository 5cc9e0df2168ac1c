"""Nothing leaked: a whole nightly run at DEBUG (`cmesync run --embedded --log-level DEBUG`), with text logs and
with JSON logs (`--log-format json`), writes no NPI, email, date of birth, licence number, learner name or secret
to its terminal output or its HTML report.

The needles are read from the sample data the run itself ingests (`deploy/sample/`) and from the credentials
in the sample config and the sandboxes, so new sample records are covered without editing this test.
"""

from __future__ import annotations

import base64
import csv
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.sandbox.stack import SandboxStack
from pipeline.config import SAMPLE_DIR

SECRET_KEYS = ("password", "token", "api_key", "upload_key", "hmac_secret", "secret")
NPI_KEYS = ("npi", "https://cmesync.org/xapi/ext/npi")
EMAIL_KEYS = ("email", "user_email", "mbox")
DOB_KEYS = ("dob", "dob_month_day", "https://cmesync.org/xapi/ext/dob-month-day")
LICENCE_KEYS = ("licence_number",)
GIVEN_KEYS = ("first_name", "given_name", "https://cmesync.org/xapi/ext/given-name")
FAMILY_KEYS = ("last_name", "family_name", "https://cmesync.org/xapi/ext/family-name")
CSV_COLUMNS = {"NPI": "npi", "Email": "email", "First Name": "given", "Last Name": "family"}
RUN_TIMEOUT_S = 300


@dataclass(frozen=True)
class Needle:
    kind: str
    value: str
    pattern: re.Pattern[str]


# Byte escapes of a bytes repr (`b'\x14' + NPI` is how an Avro string's length prefix prints) become spaces
# before scanning, so a value glued to one is still seen.
BYTE_ESCAPES = re.compile(r"\\(?:x[0-9a-fA-F]{2}|[ntr])")
BOUNDARIES = {
    "npi": (r"(?<!\d)", r"(?!\d)"),  # not inside a longer number, such as a millisecond timestamp
    "licence": (r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"),
    "name": (r"(?<![^\W\d_])", r"(?![^\W\d_])"),  # letters on neither side: "Wen Li" is not in "Owen Lin"
}


def _literal(kind: str, value: str) -> Needle:
    """Emails and secrets match anywhere (an Avro length prefix can print as a letter right before them)."""
    before, after = BOUNDARIES.get(kind, ("", ""))
    variants = {re.escape(value), re.escape(json.dumps(value)[1:-1])}  # as written, and JSON-escaped (Zo\u00eb)
    return Needle(kind, value, re.compile(rf"{before}(?:{'|'.join(sorted(variants))}){after}", re.IGNORECASE))


def _dob(value: str) -> Needle:
    """A bare MM-DD is in every timestamp; a date of birth leaks as a learner field holding it."""
    return Needle("dob", value, re.compile(rf"dob[\w-]*[\"']?\s*[:=]\s*[\"']?{re.escape(value)}(?!\d)", re.IGNORECASE))


def _walk(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _walk(child, child_key)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child, key)
    else:
        yield key, node


def _records() -> Iterator[dict[str, Any]]:
    """Every learner-bearing record of the sample data as flat dicts of (field name → value)."""
    for name in ("xapi_statements.json", "webinar_report.json", "provider_completions.json"):
        data = json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))
        for record in data if isinstance(data, list) else _registrants_and_participants(data):
            flat: dict[str, Any] = {}
            for key, value in _walk(record):
                flat.setdefault(key, value)
            for question in record.get("custom_questions", []):
                flat.setdefault(question["title"].lower(), question["value"])
            yield flat
    for path in [*sorted((SAMPLE_DIR / "csv_drops").glob("*.csv")), SAMPLE_DIR / "compliance_roster.csv"]:
        yield from _csv_rows(path)
    yield from _csv_rows(SAMPLE_DIR / "hr_roster.csv")


def _registrants_and_participants(report: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for webinar in report["webinars"]:
        yield from webinar["registrants"]
        for instance in webinar["instances"]:
            yield from instance["participants"]


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # the sample's Latin-1 drop, as the connector's fallback reads it
    for row in csv.DictReader(text.splitlines()):
        yield {CSV_COLUMNS.get(column, column): value for column, value in row.items()}


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> str:
    return next((str(record[k]) for k in keys if record.get(k)), "")


def pii_needles() -> list[Needle]:
    needles: dict[tuple[str, str], Needle] = {}

    def add(needle: Needle) -> None:
        needles.setdefault((needle.kind, needle.value.lower()), needle)

    for record in _records():
        for key, value in record.items():
            if not isinstance(value, str) or not value.strip():
                continue
            if key in NPI_KEYS:
                add(_literal("npi", value))
            elif key in EMAIL_KEYS:
                add(_literal("email", value.removeprefix("mailto:")))
            elif key in DOB_KEYS:
                add(_dob(value))
            elif key in LICENCE_KEYS:
                add(_literal("licence", value))
        given = _first(record, (*GIVEN_KEYS, "given"))
        family = _first(record, (*FAMILY_KEYS, "family"))
        if given and family:
            add(_literal("name", f"{given} {family}"))
        elif record.get("user_email") or record.get("mbox"):
            whole = _first(record, ("name",))  # a participant's or an xAPI actor's display name
            if " " in whole:
                add(_literal("name", whole))
    return list(needles.values())


def secret_needles() -> list[Needle]:
    """Inline secrets of the sample config, the sandboxes' own credentials, and Basic-auth encodings of them."""
    config = tomllib.loads((SAMPLE_DIR / "cmesync.toml").read_text())
    values: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for section in [*config.get("sources", []), *config.get("registries", [])]:
        values |= {str(v) for k, v in section.items() if k in SECRET_KEYS and v}
        if section.get("username") and section.get("password"):
            pairs.add((section["username"], section["password"]))
    for cls in _sandbox_classes():
        defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()}
        values |= {v for n, v in defaults.items() if n in SECRET_KEYS and isinstance(v, str) and v}
        if isinstance(defaults.get("username"), str) and isinstance(defaults.get("password"), str):
            pairs.add((defaults["username"], defaults["password"]))
    values |= {base64.b64encode(f"{user}:{password}".encode()).decode() for user, password in pairs}
    return [_literal("secret", v) for v in sorted(values)]


def _sandbox_classes() -> list[type]:
    from deploy.sandbox import stack

    return [
        obj
        for obj in vars(stack).values()
        if inspect.isclass(obj) and obj.__module__.startswith("deploy.sandbox.") and obj is not SandboxStack
    ]


def find_leaks(text: str, needles: list[Needle]) -> list[str]:
    """One line per hit: the needle's kind and the start of the offending line, the value itself masked."""
    hits: list[str] = []
    for raw_line in text.splitlines():
        line = BYTE_ESCAPES.sub(" ", raw_line)
        for needle in needles:
            if needle.pattern.search(line):
                hits.append(f"{needle.kind}: {needle.pattern.sub('<' + needle.kind + '>', line)[:300]}")
    return hits


def test_given_the_sample_data_when_needles_are_collected_then_every_kind_is_there() -> None:
    kinds = {n.kind for n in [*pii_needles(), *secret_needles()]}
    assert kinds == {"npi", "email", "dob", "licence", "name", "secret"}


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("13:00:01 | DEBUG | kafka - Send: b'...\\x142030824629\\x02...'", "npi"),
        ("learner {'npi': None, 'email': 'Tomas.Ruiz@example.org'}", "email"),
        ('{"learner": {"dob_month_day": "03-14"}}', "dob"),
        ("roster row EH-0104,,RN4488120,FL", "licence"),
        ("kafka - Request 4: ProduceRequest(records=b'\\x0cWen Li\\x02')", "name"),
        ('report {"given_name": "Zo\\u00eb Adams"}', "name"),
        ("participant Priya Raman joined", "name"),
        ("Authorization: Bearer ama-demo-token", "secret"),
    ],
)
def test_given_a_line_holding_a_needle_when_scanned_then_it_is_found(line: str, kind: str) -> None:
    hits = find_leaks(line, [*pii_needles(), *secret_needles()])
    assert [hit.split(":")[0] for hit in hits] == [kind]


def test_given_a_json_log_line_quoting_a_learner_field_when_decoded_and_scanned_then_it_is_found() -> None:
    line = json.dumps({"level": "DEBUG", "message": 'payload {"learner": {"dob_month_day": "03-14"}}'})
    hits = find_leaks(decoded_json_logs(line), [*pii_needles(), *secret_needles()])
    assert [hit.split(":")[0] for hit in hits] == ["dob"]


def test_given_timestamps_and_ids_when_scanned_then_nothing_is_found() -> None:
    innocent = "2026-03-14T06:30:00Z run 1493027167123 offset 1760000000 dob field missing; 06-30 12:00"
    assert find_leaks(innocent, [*pii_needles(), *secret_needles()]) == []


def json_log_entries(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as the JSON object it must be (this fails on the first that is not)."""
    return [json.loads(line) for line in stderr.splitlines()]


def decoded_json_logs(stderr: str) -> str:
    """The fields of JSON log lines as they read once decoded: JSON escapes the quotes inside a message, which
    would hide a quoted learner field from the patterns written for plain text."""
    return "\n".join(
        json.dumps(value) if not isinstance(value, str) else value
        for entry in json_log_entries(stderr)
        for value in entry.values()
    )


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_given_a_full_run_at_debug_when_its_output_is_scanned_then_no_pii_or_secret_appears(
    tmp_path: Path, log_format: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMESYNC_", "PREFECT_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # A fresh Prefect database migrates on first start, slowly at DEBUG on two shared cores.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    cmesync = Path(sys.executable).with_name("cmesync")
    run = subprocess.run(
        [
            *(str(cmesync), "run", "--embedded", "--log-level", "DEBUG", "--log-format", log_format),
            *("--config", str(SAMPLE_DIR / "cmesync.toml")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    reports = sorted((tmp_path / "var" / "reports").glob("*.html"))
    # The scan only means something if the run logged at DEBUG and did the work: wire-level client logs present,
    # credits delivered, a report written.
    if log_format == "text":
        assert " | DEBUG   | " in run.stderr and "urllib3" in run.stderr and "kafka" in run.stderr
    else:
        debug_loggers = {e["logger"] for e in json_log_entries(run.stderr) if e["level"] == "DEBUG"}
        assert any(name.startswith("urllib3") for name in debug_loggers)
        assert any(name.startswith("kafka") for name in debug_loggers)
    assert re.search(r"deliveries to registries\s+│\s+[1-9]", run.stdout)
    assert reports
    outputs = {"stdout": run.stdout, "stderr": run.stderr} | {p.name: p.read_text() for p in reports}
    if log_format == "json":
        outputs["stderr, JSON decoded"] = decoded_json_logs(run.stderr)
    needles = [*pii_needles(), *secret_needles()]
    leaks = [f"{where}: {hit}" for where, text in outputs.items() for hit in find_leaks(text, needles)]
    assert leaks == [], "\n".join(leaks[:40])
