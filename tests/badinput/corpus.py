"""A deterministic corpus of bad input for every source format, each case with the stable reason code the
system must dead-letter it with.

Every case is what a source would really serve: an xAPI statement, a webinar participant row, a CSV data
line or a whole CSV file, a provider REST record, a whole HTTP page body, or the raw bytes of a Kafka
message pushed onto `cme.attendance.v1`. The categories are the issue's (truncated JSON, wrong types, huge
fields, control characters, SQL/HTML injection in names, impossible dates, negative or absurd durations,
unknown enums, invalid NPIs, mixed encodings), crossed with every format where the format can carry them.

Nothing here is random: the same cases, ids and payloads on every run, so a failing case can be named.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastavro import parse_schema, schemaless_writer

from reconcile.identity import npi_check_digit
from schemas.codec import schema_text

# -- what the corpus is served through (the run tier configures its sources with these) ----------------------

EXT = "https://cmesync.org/xapi/ext/"
ACTIVITY_IRI = "https://lms.example.org/activities/ACT-001"
WEBINAR_ID = "95512340077"
WEBINAR_ACTIVITY = "ACT-002"
CSV_HEADER = ["Email", "NPI", "First", "Last", "Role", "Session", "Status", "In", "Out", "DOB"]
CSV_FIELDS = {
    "email": "Email",
    "npi": "NPI",
    "given_name": "First",
    "family_name": "Last",
    "profession": "Role",
    "activity": "Session",
    "kind": "Status",
    "started_at": "In",
    "ended_at": "Out",
    "dob_month_day": "DOB",
}
CSV_KINDS = {"attended": "ATTENDED", "present": "ATTENDED"}
CSV_ACTIVITIES = {"WS-9": "ACT-002"}
REST_FIELDS = {
    "event_id": "id",
    "kind": "status",
    "occurred_at": "completed_at",
    "minutes": "minutes",
    "activity": "course.code",
    "npi": "learner.npi",
    "email": "learner.email",
    "given_name": "learner.first_name",
    "family_name": "learner.last_name",
    "profession": "learner.credential",
    "dob_month_day": "learner.dob",
}
REST_KINDS = {"completed": "COMPLETED", "passed": "COMPLETED"}
REST_ACTIVITIES = {"SEPSIS-ED": "ACT-001"}
BASE = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)

KINDS = ("xapi", "webinar", "csv_drop", "provider_rest", "push")


@dataclass(frozen=True)
class Case:
    """One bad input. `level`: `record` (one statement/row/record/message), `page` (a whole HTTP page body,
    `payload` is its bytes) or `file` (a whole CSV file, `payload` is its bytes). `stage`: where the code is
    given (`normalise` by the connector, `reconcile` by the reconcile stage, which also decodes pushes)."""

    case_id: str
    kind: str
    category: str
    payload: Any
    expected: str
    level: str = "record"
    stage: str = "normalise"
    # Values from the payload that must never appear in a reason text (PII and the hostile strings).
    secrets: tuple[str, ...] = field(default=(), repr=False)


def npi_for(index: int) -> str:
    """A made-up NPI with a valid CMS check digit."""
    first_nine = f"2{index:08d}"
    return first_nine + str(npi_check_digit(first_nine))


def email_for(index: int) -> str:
    return f"bad{index:04d}@example.net"


# -- shared hostile values -----------------------------------------------------------------------------------

INJECTIONS = (
    "Robert'); DROP TABLE learners;--",
    "' OR '1'='1",
    '"; DELETE FROM credits; --',
    "1; SELECT pg_sleep(10)",
    "x' UNION SELECT npi FROM learners;--",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '" onmouseover="alert(1)',
    "<b>Bold</b>",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    "%27%20OR%201=1",
)
CONTROLS = ("\x00", "\x01", "\x07", "\x08", "\x1b[31m", "\x7f", "\x85", "\x9b", "\r\n", "\x0b", "\x0c", "\x1f")
HUGE_SIZES = (1025, 4096, 65_000, 300_000)
BAD_INSTANTS = (
    "2026-02-30T10:00:00Z",
    "2026-13-01T10:00:00Z",
    "2026-11-31T10:00:00Z",
    "2026-11-10T25:00:00Z",
    "2026-11-10T10:61:00Z",
    "2025-02-29T10:00:00Z",
    "0000-01-01T00:00:00Z",
    "2026-00-10T10:00:00Z",
    "yesterday afternoon",
    "10/32/2026 10:00",
)
BAD_DOBS = ("02-30", "02-31", "04-31", "06-31", "09-31", "11-31", "13-01", "00-10", "12-00", "2-3", "1990-05-04")
WRONG_NPIS = (
    "123456789",
    "12345678901",
    "abcdefghij",
    "0000000000",
    "1234-56789",
    "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13",  # full-width digits
    "12345 6789",
    "1234567890.0",
)


def bad_check_digit_npis(count: int, offset: int) -> list[str]:
    """Ten digits with a wrong CMS check digit: a valid NPI with its last digit changed."""
    found = []
    for index in range(count):
        valid = npi_for(offset + index)
        found.append(valid[:9] + str((int(valid[9]) + 1 + index % 8) % 10))
    return found


# -- xAPI statements -----------------------------------------------------------------------------------------


def good_statement(index: int, **changes: Any) -> dict[str, Any]:
    stored = BASE + timedelta(minutes=index)
    statement: dict[str, Any] = {
        "id": f"00000000-0000-4000-8000-{index:012d}",
        "actor": {"objectType": "Agent", "mbox": f"mailto:{email_for(index)}"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"objectType": "Activity", "id": ACTIVITY_IRI},
        "result": {"completion": True, "duration": "PT1H20M"},
        "context": {
            "extensions": {
                f"{EXT}npi": npi_for(index),
                f"{EXT}profession": "MD",
                f"{EXT}given-name": "Ada",
                f"{EXT}family-name": "Lovelace",
            }
        },
        "timestamp": stored.isoformat().replace("+00:00", "Z"),
        "stored": stored.isoformat().replace("+00:00", "Z"),
    }
    for path, value in changes.items():
        _set(statement, path, value)
    return statement


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a value at a `>`-separated path (xAPI extension keys are IRIs); `...` removes the key."""
    *parents, last = path.split(">")
    for step in parents:
        data = data.setdefault(step, {})
    if value is ...:
        data.pop(last, None)
    else:
        data[last] = value


class _Builder:
    """Numbers the cases of one source kind and builds each from a good record plus its changes."""

    def __init__(self, kind: str, good: Callable[..., Any]) -> None:
        self.kind = kind
        self.good = good
        self.count = 0

    def __call__(
        self,
        category: str,
        expected: str,
        changes: dict[str, Any] | None = None,
        *,
        secrets: tuple[str, ...] = (),
        stage: str = "normalise",
        level: str = "record",
        payload: Any = None,
    ) -> Case:
        self.count += 1
        index = self.count
        built = payload if payload is not None else self.good(index, **(changes or {}))
        return Case(f"{self.kind}-{index:04d}-{category}", self.kind, category, built, expected, level, stage, secrets)


BROKEN_BODIES: tuple[tuple[str, Callable[[bytes], bytes], str], ...] = (
    ("cut-1", lambda body: body[:-1], "MALFORMED_PAGE"),
    ("cut-20", lambda body: body[:-20], "MALFORMED_PAGE"),
    ("cut-half", lambda body: body[: len(body) // 2], "MALFORMED_PAGE"),
    ("first-byte", lambda body: body[:1], "MALFORMED_PAGE"),
    ("empty", lambda body: b"", "MALFORMED_PAGE"),
    ("html", lambda body: b"<html><body><h1>502 Bad Gateway</h1></body></html>", "MALFORMED_PAGE"),
    ("null", lambda body: b"null", "MALFORMED_PAGE"),
    ("array", lambda body: b"[" + body + b"]", "MALFORMED_PAGE"),
    ("deep", lambda body: b"[" * 200_000 + b"]" * 200_000, "MALFORMED_PAGE"),
    ("latin-1", lambda body: body.decode().replace("Ada", "Zoë").encode("latin-1"), "ENCODING_INVALID"),
)


def _page_cases(build: _Builder, page: Callable[[], bytes]) -> Iterator[Case]:
    """Whole page bodies broken in each way (the HTTP sources' form of truncated JSON)."""
    for name, breaks, expected in BROKEN_BODIES:
        category = "mixed_encodings" if expected == "ENCODING_INVALID" else "truncated_json"
        case = build(category, expected, level="page", payload=breaks(page()))
        yield Case(f"{case.case_id}-{name}", case.kind, category, case.payload, expected, "page")


def _xapi_cases() -> Iterator[Case]:
    build = _Builder("xapi", good_statement)
    npi_ext = f"context>extensions>{EXT}npi"
    given_ext = f"context>extensions>{EXT}given-name"
    family_ext = f"context>extensions>{EXT}family-name"
    dob_ext = f"context>extensions>{EXT}dob-month-day"
    board_ext = f"context>extensions>{EXT}board-id"
    yield from _page_cases(build, lambda: json.dumps({"statements": [good_statement(0)], "more": ""}).encode())
    for value in (1763000000, 1.5, True, ["2026-11-12T09:00:00Z"], {"at": "now"}):
        yield build("wrong_types", "SCHEMA_INVALID", {"timestamp": value})
    for value in ("someone@example.net", ["x"], 42):
        yield build("wrong_types", "SCHEMA_INVALID", {"actor": value})
    for value in (["x"], 7, {"id": None}, "ACT-001"):
        yield build("wrong_types", "SCHEMA_INVALID", {"object": value})
    for value in (["1234567893"], {"value": "1"}, True):
        yield build("wrong_types", "SCHEMA_INVALID", {npi_ext: value})
    for value in (["Ada"], {"n": 1}, False):
        yield build("wrong_types", "SCHEMA_INVALID", {given_ext: value})
    for value in (90, ["PT1H"], "1 hour", "P1Y", "PT", "P1DT"):
        yield build("wrong_types", "SCHEMA_INVALID", {"result>duration": value})
    for value in ([1], {"objectType": "Activity"}):
        yield build("wrong_types", "SCHEMA_INVALID", {"object>id": value})
    for size in HUGE_SIZES:
        yield build("huge_fields", "FIELD_TOO_LARGE", {"actor>mbox": f"mailto:{'a' * size}@example.net"})
        yield build("huge_fields", "FIELD_TOO_LARGE", {given_ext: "A" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {family_ext: "L" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"object>id": ACTIVITY_IRI + "x" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {board_ext: "B" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"id": "f" * size})
    for control in CONTROLS:
        yield build("control_characters", "SCHEMA_INVALID", {given_ext: f"Ada{control}Mary"})
        yield build("control_characters", "SCHEMA_INVALID", {family_ext: f"Love{control}lace"})
        yield build("control_characters", "SCHEMA_INVALID", {"object>id": f"{ACTIVITY_IRI}{control}x"})
        yield build("control_characters", "SCHEMA_INVALID", {board_ext: f"B{control}42"})
    for hostile in INJECTIONS:
        yield build("injection", "SCHEMA_INVALID", {given_ext: hostile}, secrets=(hostile,))
        yield build("injection", "SCHEMA_INVALID", {family_ext: hostile}, secrets=(hostile,))
        yield build("injection", "UNKNOWN_ACTIVITY", {"object>id": hostile}, secrets=(hostile,), stage="reconcile")
    for instant in BAD_INSTANTS:
        yield build("impossible_dates", "SCHEMA_INVALID", {"timestamp": instant})
    for dob in BAD_DOBS:
        yield build("impossible_dates", "SCHEMA_INVALID", {dob_ext: dob})
    for duration in (
        "-PT1H", "-P1D", "-PT0.5S", "PT0S", "PT0M", "P0D", "P15D", "PT400H", "P9999D", "PT999999M", "PT20161M",
        "P14DT1M",
    ):  # fmt: skip
        yield build("durations", "IMPLAUSIBLE_DURATION", {"result>duration": duration})
    for verb in (
        "experienced", "launched", "http://adlnet.gov/expapi/verbs/launched", "http://adlnet.gov/expapi/verbs/COMPLETED",
        "http://adlnet.gov/expapi/verbs/failed", "https://adlnet.gov/expapi/verbs/completed", "", "completed ",
        "urn:x:completed", "registered",
    ):  # fmt: skip
        yield build("unknown_enums", "UNSUPPORTED_VERB", {"verb": {"id": verb}})
    for npi in (*WRONG_NPIS, 1.5e9, *bad_check_digit_npis(32, 500)):
        yield build("invalid_npis", "INVALID_NPI", {npi_ext: npi}, secrets=(str(npi),))
    for text in ("Ada\udc80", "\ud83dLovelace", "Zo\udcc3\udcab"):
        yield build("mixed_encodings", "ENCODING_INVALID", {given_ext: text})
        yield build("mixed_encodings", "ENCODING_INVALID", {"actor>mbox": f"mailto:{text}@example.net"})
    hashed_only = {"objectType": "Agent", "mbox_sha1sum": "ab" * 20}
    yield build("identity", "MISSING_IDENTITY", {"actor": hashed_only, "context": {}})
    yield build("identity", "MISSING_IDENTITY", {"actor": {"objectType": "Group", "member": []}})


# -- webinar participant rows (with the registration that identifies them) ---------------------------------------


def good_participant(index: int, **changes: Any) -> dict[str, Any]:
    """{"participant": row, "registrant": registration or None}; `registrant/...` changes edit the latter."""
    join = BASE + timedelta(hours=index % 5, minutes=index % 60)
    row: dict[str, Any] = {
        "id": f"p{index}",
        "user_id": str(10_000_000 + index),
        "name": "Ada Lovelace",
        "user_email": email_for(index),
        "join_time": join.isoformat().replace("+00:00", "Z"),
        "leave_time": (join + timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
        "duration": 2700,
        "registrant_id": f"rg-{index}",
        "status": "in_meeting",
    }
    registrant: dict[str, Any] = {
        "id": f"rg-{index}",
        "email": email_for(index),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "custom_questions": [{"title": "NPI", "value": npi_for(index)}, {"title": "Credential", "value": "MD"}],
    }
    record: dict[str, Any] = {"participant": row, "registrant": registrant}
    for path, value in changes.items():
        if path == "participant":
            record["participant"] = value
        elif path.startswith("answer>"):
            title = path.removeprefix("answer>")
            questions = [q for q in registrant["custom_questions"] if q["title"] != title]
            registrant["custom_questions"] = [*questions, {"title": title, "value": value}]
        elif path.startswith("registrant>"):
            _set(registrant, path.removeprefix("registrant>"), value)
        else:
            _set(row, path, value)
    return record


def webinar_page(rows: list[Any]) -> bytes:
    body = {"page_size": 300, "total_records": len(rows), "next_page_token": "", "participants": rows}
    return json.dumps(body).encode()


def _webinar_cases() -> Iterator[Case]:
    build = _Builder("webinar", good_participant)
    yield from _page_cases(build, lambda: webinar_page([good_participant(0)["participant"]]))
    for value in ("not a row", 42, ["a", "b"], None, True):
        yield build("wrong_types", "SCHEMA_INVALID", {"participant": value})
    for name in ("join_time", "leave_time"):
        for value in (1763000000, ["2026-11-12T09:00:00Z"], {"t": 1}, True, None):
            yield build("wrong_types", "SCHEMA_INVALID", {name: value})
    for value in (["a@example.net"], {"e": 1}, 42.5):
        yield build("wrong_types", "SCHEMA_INVALID", {"user_email": value})
    for size in HUGE_SIZES:
        yield build("huge_fields", "FIELD_TOO_LARGE", {"user_email": f"{'u' * size}@example.net"})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"registrant>first_name": "A" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"registrant>last_name": "L" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"answer>NPI": "1" * size})
    for control in CONTROLS:
        yield build("control_characters", "SCHEMA_INVALID", {"registrant>first_name": f"Ada{control}Mary"})
        yield build("control_characters", "SCHEMA_INVALID", {"registrant>last_name": f"Love{control}lace"})
        yield build("control_characters", "SCHEMA_INVALID", {"user_email": f"ada{control}x@example.net"})
    for hostile in INJECTIONS:
        yield build("injection", "SCHEMA_INVALID", {"registrant>first_name": hostile}, secrets=(hostile,))
        yield build("injection", "SCHEMA_INVALID", {"registrant>last_name": hostile}, secrets=(hostile,))
    for instant in BAD_INSTANTS:
        yield build("impossible_dates", "SCHEMA_INVALID", {"join_time": instant})
        yield build("impossible_dates", "SCHEMA_INVALID", {"leave_time": instant})
    for dob in BAD_DOBS:
        yield build("impossible_dates", "SCHEMA_INVALID", {"answer>Date of birth": dob})
    join = BASE + timedelta(days=1)
    for minutes in (-45, -1, -0.5, 0, 24 * 60 + 1, 3 * 24 * 60, 365 * 24 * 60, 10 * 365 * 24 * 60):
        leave = (join + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        yield build("durations", "IMPLAUSIBLE_DURATION", {"join_time": join.isoformat(), "leave_time": leave})
    for npi in (*WRONG_NPIS, *bad_check_digit_npis(32, 700)):
        yield build("invalid_npis", "INVALID_NPI", {"answer>NPI": npi}, secrets=(npi,))
    for text in ("Ada\udc80", "\ud83dLovelace", "Zo\udcc3\udcab"):
        yield build("mixed_encodings", "ENCODING_INVALID", {"registrant>first_name": text})
        yield build("mixed_encodings", "ENCODING_INVALID", {"user_email": f"{text}@example.net"})
    yield build("identity", "MISSING_IDENTITY", {"user_email": "", "registrant_id": "", "id": "", "registrant": None})


# -- CSV sign-in sheets ---------------------------------------------------------------------------------------


def good_csv_cells(index: int, **changes: str) -> list[str]:
    scan_in = BASE + timedelta(days=2, minutes=index)
    cells = {
        "Email": email_for(index),
        "NPI": npi_for(index),
        "First": "Ada",
        "Last": "Lovelace",
        "Role": "MD",
        "Session": "WS-9",
        "Status": "attended",
        "In": scan_in.strftime("%Y-%m-%d %H:%M"),
        "Out": (scan_in + timedelta(minutes=50)).strftime("%Y-%m-%d %H:%M"),
        "DOB": "",
    }
    cells.update(changes)
    return [cells[column] for column in CSV_HEADER]


def csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue().removesuffix("\r\n")


def good_csv_line(index: int, **changes: str) -> bytes:
    return csv_line(good_csv_cells(index, **changes)).encode()


def csv_file(lines: list[bytes], header: list[str] = CSV_HEADER) -> bytes:
    return b"".join(line + b"\r\n" for line in [csv_line(header).encode(), *lines])


def _csv_cases() -> Iterator[Case]:
    build = _Builder("csv_drop", good_csv_line)
    good = good_csv_line(0)
    # Truncated rows: each in a file of its own, since a quote left open may pair with the next line's.
    for name, line in (
        ("open-quote", b'"' + good),
        ("cut-in-quote", good[:30] + b',"Lov'),
        ("too-few", b",".join(good.split(b",")[:4])),
        ("too-many", good + b",extra,cells"),
        ("one-cell", good[:12]),
    ):
        case = build("truncated_json", "MALFORMED_ROW", level="file", payload=csv_file([line]))
        yield Case(f"{case.case_id}-{name}", case.kind, case.category, case.payload, case.expected, "file")
    yield build("truncated_json", "UNMAPPED_HEADER", level="file", payload=csv_file([good], CSV_HEADER[:3]))
    for value in ("1763000000", "45", "true", "[2026-11-12]", "2026-11-12T09:00:00+25:00"):
        yield build("wrong_types", "SCHEMA_INVALID", {"In": value})
    for value in ("1.23E+09", "1.234567893E9", "2.0000001E+09"):
        yield build("wrong_types", "INVALID_NPI", {"NPI": value})
    for value in ("not-an-email", "a@b@c", "@example.net", "ada lovelace@example.net"):
        yield build("wrong_types", "SCHEMA_INVALID", {"Email": value})
    for size in HUGE_SIZES:
        expected = "FIELD_TOO_LARGE"
        yield build("huge_fields", expected, {"Email": f"{'u' * size}@example.net"})
        yield build("huge_fields", expected, {"First": "A" * size})
        yield build("huge_fields", expected, {"Last": "L" * size})
        yield build("huge_fields", expected, {"Session": "S" * size})
    for control in CONTROLS[1:]:  # NUL makes the whole file non-text: a file case below
        yield build("control_characters", "SCHEMA_INVALID", {"First": f"Ada{control}Mary"})
        yield build("control_characters", "SCHEMA_INVALID", {"Last": f"Love{control}lace"})
        yield build("control_characters", "SCHEMA_INVALID", {"Email": f"ada{control}x@example.net"})
    formulas = ("=HYPERLINK(\"http://127.0.0.1\",\"x\")", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "=1+1")
    for hostile in (*INJECTIONS, *formulas):
        yield build("injection", "SCHEMA_INVALID", {"First": hostile}, secrets=(hostile,))
        yield build("injection", "SCHEMA_INVALID", {"Last": hostile}, secrets=(hostile,))
    for hostile in INJECTIONS[:6]:
        yield build("injection", "UNKNOWN_ACTIVITY", {"Session": hostile}, secrets=(hostile,), stage="reconcile")
    for instant in (*BAD_INSTANTS[:6], "02/30/2026 10:00", "13/01/2026 10:00", "11/10/2026 25:00"):
        yield build("impossible_dates", "SCHEMA_INVALID", {"In": instant})
        yield build("impossible_dates", "SCHEMA_INVALID", {"Out": instant})
    for dob in BAD_DOBS:
        yield build("impossible_dates", "SCHEMA_INVALID", {"DOB": dob})
    scan_in = BASE + timedelta(days=3)
    for minutes in (-50, -1, 0, 24 * 60 + 1, 2 * 24 * 60, 400 * 24 * 60):
        changes = {"In": scan_in.strftime("%Y-%m-%d %H:%M"),
                   "Out": (scan_in + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M")}
        yield build("durations", "IMPLAUSIBLE_DURATION", changes)
    for status in ("absent", "no-show", "registered", "ATTENDED?", "left early", "cancelled", "1"):
        yield build("unknown_enums", "UNSUPPORTED_KIND", {"Status": status})
    for npi in (*WRONG_NPIS, *bad_check_digit_npis(32, 900)):
        yield build("invalid_npis", "INVALID_NPI", {"NPI": npi}, secrets=(npi,))
    # cp1252 curly quotes and dashes read as Latin-1 are C1 controls: not text in either encoding.
    for raw_name in (b"O\x92Brien", b"\x93Ada\x94", b"Smith\x96Jones", b"Caf\x80"):
        line = good.replace(b"Lovelace", raw_name)
        yield build("mixed_encodings", "ENCODING_INVALID", payload=line)
    for name, content in (
        ("utf-16", csv_file([good]).decode().encode("utf-16")),
        ("utf-16-be", csv_file([good]).decode().encode("utf-16-be")),
        ("utf-32", csv_file([good]).decode().encode("utf-32")),
        ("nul", csv_file([good.replace(b"Ada", b"A\x00da")])),
    ):
        case = build("mixed_encodings", "ENCODING_INVALID", level="file", payload=content)
        yield Case(f"{case.case_id}-{name}", case.kind, case.category, case.payload, case.expected, "file")
    yield build("identity", "MISSING_IDENTITY", {"Email": "", "NPI": ""})


# -- provider REST records ----------------------------------------------------------------------------------


def good_rest_record(index: int, **changes: Any) -> Any:
    updated = BASE + timedelta(hours=1, minutes=index)
    record: dict[str, Any] = {
        "id": f"bad-{index:05d}",
        "updated_at": updated.isoformat().replace("+00:00", "Z"),
        "status": "completed",
        "completed_at": (updated - timedelta(minutes=3)).isoformat().replace("+00:00", "Z"),
        "minutes": 90,
        "course": {"code": "SEPSIS-ED"},
        "learner": {
            "npi": npi_for(index),
            "email": email_for(index),
            "first_name": "Ada",
            "last_name": "Lovelace",
            "credential": "MD",
        },
    }
    if "record" in changes:
        return changes["record"]
    for path, value in changes.items():
        _set(record, path, value)
    return record


def rest_page(records: list[Any]) -> bytes:
    return json.dumps({"data": records, "meta": {"next_cursor": None}}).encode()


def _rest_cases() -> Iterator[Case]:
    build = _Builder("provider_rest", good_rest_record)
    yield from _page_cases(build, lambda: rest_page([good_rest_record(0)]))
    for value in ("not a record", 42, ["a"], None, True):
        yield build("wrong_types", "SCHEMA_INVALID", {"record": value})
    for value in (1763000000, ["2026-11-12"], {"t": 1}, True):
        yield build("wrong_types", "SCHEMA_INVALID", {"completed_at": value})
    for value in (["1234567893"], {"v": 1}, True):
        yield build("wrong_types", "SCHEMA_INVALID", {"learner>npi": value})
    for value in ("ninety", [90], {"m": 90}, True, "NaN", "Infinity"):
        yield build("wrong_types", "SCHEMA_INVALID", {"minutes": value})
    for value in (["SEPSIS-ED"], {"c": 1}):
        yield build("wrong_types", "SCHEMA_INVALID", {"course>code": value})
    for value in (["x"], {"a": 1}, True):
        yield build("wrong_types", "SCHEMA_INVALID", {"learner>first_name": value})
        yield build("wrong_types", "SCHEMA_INVALID", {"learner>email": value})
    for size in HUGE_SIZES:
        yield build("huge_fields", "FIELD_TOO_LARGE", {"learner>email": f"{'u' * size}@example.net"})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"learner>first_name": "A" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"learner>last_name": "L" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"course>code": "S" * size})
        yield build("huge_fields", "FIELD_TOO_LARGE", {"id": "i" * size})
    for control in CONTROLS:
        yield build("control_characters", "SCHEMA_INVALID", {"learner>first_name": f"Ada{control}Mary"})
        yield build("control_characters", "SCHEMA_INVALID", {"learner>last_name": f"Love{control}lace"})
        yield build("control_characters", "SCHEMA_INVALID", {"course>code": f"SEPSIS{control}ED"})
        yield build("control_characters", "SCHEMA_INVALID", {"id": f"bad{control}id"})
    for hostile in INJECTIONS:
        yield build("injection", "SCHEMA_INVALID", {"learner>first_name": hostile}, secrets=(hostile,))
        yield build("injection", "SCHEMA_INVALID", {"learner>last_name": hostile}, secrets=(hostile,))
        yield build("injection", "UNKNOWN_ACTIVITY", {"course>code": hostile}, secrets=(hostile,), stage="reconcile")
    for instant in BAD_INSTANTS:
        yield build("impossible_dates", "SCHEMA_INVALID", {"completed_at": instant})
    for dob in BAD_DOBS:
        yield build("impossible_dates", "SCHEMA_INVALID", {"learner>dob": dob})
    for minutes in (-90, -1, -0.01, 0, 24 * 60 + 1, 1e6, 1e12, 10**30):
        yield build("durations", "IMPLAUSIBLE_DURATION", {"minutes": minutes})
    for status in ("in_progress", "cancelled", "COMPLETE", "failed", "enrolled", "complete d", "42"):
        yield build("unknown_enums", "UNSUPPORTED_KIND", {"status": status})
    for npi in (*WRONG_NPIS, 1.5e9, *bad_check_digit_npis(32, 1100)):
        yield build("invalid_npis", "INVALID_NPI", {"learner>npi": npi}, secrets=(str(npi),))
    for text in ("Ada\udc80", "\ud83dLovelace", "Zo\udcc3\udcab"):
        yield build("mixed_encodings", "ENCODING_INVALID", {"learner>first_name": text})
        yield build("mixed_encodings", "ENCODING_INVALID", {"learner>email": f"{text}@example.net"})
        yield build("mixed_encodings", "ENCODING_INVALID", {"course>code": f"SEPSIS{text}"})
    yield build("identity", "MISSING_IDENTITY", {"learner": {"first_name": "No", "last_name": "Ids"}})


# -- raw Kafka messages pushed onto cme.attendance.v1 -------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    """A message value: `body` after the Confluent header with the registry's id of our schema (`framed`),
    or `body` exactly as it is (a producer that does not frame, or frames wrongly)."""

    body: bytes
    framed: bool = True

    def value(self, schema_id: int) -> bytes:
        return (b"\x00" + schema_id.to_bytes(4, "big") + self.body) if self.framed else self.body


def good_pushed_event(index: int, **changes: Any) -> dict[str, Any]:
    occurred = BASE + timedelta(days=4, minutes=index)
    event: dict[str, Any] = {
        "event_id": f"push-bad-{index:05d}",
        "source": "provider-push",
        "source_ref": f"push bad-{index:05d}",
        "kind": "COMPLETED",
        "occurred_at": occurred,
        "started_at": None,
        "ended_at": None,
        "minutes": None,
        "activity_ref": "ACT-001",
        "learner": {
            "npi": npi_for(index),
            "email": email_for(index),
            "licence": None,
            "board_id": None,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "dob_month_day": None,
            "profession": "MD",
        },
        "claimed": None,
        "voids_event_id": None,
    }
    for path, value in changes.items():
        _set(event, path, value)
    return event


def avro_body(event: dict[str, Any], retype: Callable[[dict[str, Any]], None] | None = None) -> bytes:
    """Avro binary of `event` under our schema, or under a copy changed by `retype` (to write what our own
    encoder refuses: an enum index out of range, a timestamp out of range, bytes that are not UTF-8)."""
    schema = json.loads(schema_text("attendance_event"))
    if retype is not None:
        retype(schema)
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), event)
    return out.getvalue()


def _field(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for step in path.split("."):
        fields = node["fields"] if "fields" in node else node["type"]["fields"]
        node = next(f for f in fields if f["name"] == step)
    return node


def kind_as_int(schema: dict[str, Any]) -> None:
    _field(schema, "kind")["type"] = "int"


def _occurred_as_long(schema: dict[str, Any]) -> None:
    _field(schema, "occurred_at")["type"] = "long"


def _given_name_as_bytes(schema: dict[str, Any]) -> None:
    _field(schema, "learner.given_name")["type"] = ["null", "bytes"]


def pushed(index: int, **changes: Any) -> Pushed:
    return Pushed(avro_body(good_pushed_event(index, **changes)))


def _push_cases() -> Iterator[Case]:
    build = _Builder("push", pushed)
    good = avro_body(good_pushed_event(0))
    for cut in (1, 5, 17, len(good) // 2, len(good) - 1, 0):
        yield build("truncated_json", "SCHEMA_INVALID", payload=Pushed(good[:cut]), stage="reconcile")
    header = b"\x00\x00\x00\x00\x01"
    for raw in (
        b"not avro at all",
        json.dumps(good_pushed_event(1), default=str).encode(),
        b"\x01" + header[1:] + good,
        b"\x00\x7f\xff\xff\xff" + good,
        b"\x00\x00",
        b"",
    ):
        yield build("wrong_types", "SCHEMA_INVALID", payload=Pushed(raw, framed=False), stage="reconcile")
    yield build("wrong_types", "SCHEMA_INVALID", payload=Pushed(good + b"trailing"), stage="reconcile")
    for size in (1025, 5000, 20_000):
        for path in ("learner>given_name", "learner>family_name", "learner>email", "event_id", "activity_ref",
                     "learner>board_id"):
            value = ("u" * size + "@example.net") if path.endswith("email") else "x" * size
            yield build("huge_fields", "FIELD_TOO_LARGE", {path: value}, stage="reconcile")
    for control in CONTROLS:
        for path in ("learner>given_name", "learner>family_name", "event_id", "activity_ref"):
            yield build("control_characters", "SCHEMA_INVALID", {path: f"Ab{control}cd"}, stage="reconcile")
    for hostile in INJECTIONS:
        for path in ("learner>given_name", "learner>family_name"):
            yield build("injection", "SCHEMA_INVALID", {path: hostile}, secrets=(hostile,), stage="reconcile")
    for dob in BAD_DOBS:
        yield build("impossible_dates", "SCHEMA_INVALID", {"learner>dob_month_day": dob}, stage="reconcile")
    for millis in (2**62, -(2**62), 10**17):
        body = avro_body({**good_pushed_event(0), "occurred_at": millis}, _occurred_as_long)
        yield build("impossible_dates", "SCHEMA_INVALID", payload=Pushed(body), stage="reconcile")
    for minutes in (-30.0, -0.001, 0.0, 1e9, 20_161.0 + 14 * 24 * 60):
        yield build("durations", "IMPLAUSIBLE_DURATION", {"minutes": minutes}, stage="reconcile")
    for minutes in (float("nan"), float("inf"), float("-inf")):
        yield build("durations", "SCHEMA_INVALID", {"minutes": minutes}, stage="reconcile")
    start = BASE + timedelta(days=5)
    for length in (-60, -1, 0, 24 * 60 + 1, 5 * 24 * 60):
        changes = {"kind": "ATTENDED", "started_at": start, "ended_at": start + timedelta(minutes=length)}
        yield build("durations", "IMPLAUSIBLE_DURATION", changes, stage="reconcile")
    yield build("durations", "SCHEMA_INVALID", {"kind": "ATTENDED", "started_at": start}, stage="reconcile")
    # Not -1 or -2: fastavro reads a negative index from the end of the symbols (test_known_issues.py).
    for index in (4, 5, 9, 100, 2**20):
        body = avro_body({**good_pushed_event(0), "kind": index}, kind_as_int)
        yield build("unknown_enums", "SCHEMA_INVALID", payload=Pushed(body), stage="reconcile")
    for npi in (*WRONG_NPIS, *bad_check_digit_npis(28, 1300)):
        yield build("invalid_npis", "INVALID_NPI", {"learner>npi": npi}, secrets=(npi,), stage="reconcile")
    for raw in (b"\xff\xfe", b"Zo\xeb", b"\xc3\x28", b"\xed\xa0\x80", b"Ada\x80"):
        event = good_pushed_event(0)
        event["learner"] = {**event["learner"], "given_name": raw}
        body = avro_body(event, _given_name_as_bytes)
        yield build("mixed_encodings", "SCHEMA_INVALID", payload=Pushed(body), stage="reconcile")
    yield build("identity", "MISSING_IDENTITY", {"learner": {**good_pushed_event(0)["learner"], "npi": None,
                                                              "email": None}}, stage="reconcile")


def corpus() -> list[Case]:
    """Every case, in a fixed order, each id unique."""
    cases = [*_xapi_cases(), *_webinar_cases(), *_csv_cases(), *_rest_cases(), *_push_cases()]
    ids = [case.case_id for case in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases



# -- how each source reads the corpus (the config a deployment would write) -------------------------------------

WEBINAR_QUESTIONS = {"NPI": "npi", "Credential": "profession", "Date of birth": "dob_month_day"}


def source_config(kind: str, name: str, base_url: str, secret: str, *, page_size: int = 100) -> dict[str, Any]:
    """The `[[sources]]` entry of one corpus source; `secret` is the sandbox's password or token."""
    common = {"name": name, "base_url": base_url, "page_size": page_size, "max_attempts": 3}
    if kind == "xapi":
        return {**common, "kind": "xapi", "username": "lrs-demo", "password": secret}
    if kind == "webinar":
        return {
            **common,
            "kind": "webinar",
            "token": secret,
            "webinars": {WEBINAR_ID: WEBINAR_ACTIVITY},
            "registrant_questions": WEBINAR_QUESTIONS,
        }
    if kind == "csv_drop":
        return {**common, "kind": "csv_drop", "token": secret, "fields": CSV_FIELDS, "kinds": CSV_KINDS,
                "activities": CSV_ACTIVITIES, "timezone": "UTC"}
    if kind == "provider_rest":
        return {**common, "kind": "provider_rest", "token": secret, "fields": REST_FIELDS, "kinds": REST_KINDS,
                "activities": REST_ACTIVITIES}
    raise ValueError(f"no pulled source of kind {kind}")
