"""The CSV drop source over real files: checksums (re-sent files), encodings, quoting, `file:line` positions,
resuming inside a file after a crash, and `check()`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.sources.base import Page, Rejection, Source, SourceCheckError
from connectors.sources.csv_drop import CsvDropSourceConfig
from ledger.store import Ledger
from pipeline.factory import build_source, codec_for
from pipeline.kafka.io import make_producer
from pipeline.stages.pull import pull_source

HEADER = "Email,NPI,First,Last,Role,Session,In,Out\r\n"
ADA = "ada@example.org,1493027167,Ada,Lovelace,MD,WS-7,2026-11-18 09:00,2026-11-18 10:00\r\n"
GRACE = "grace@example.org,,Grace,Hopper,RN,WS-7,2026-11-18 09:05,2026-11-18 10:30\r\n"
FIELDS = {
    "email": "Email",
    "npi": "NPI",
    "given_name": "First",
    "family_name": "Last",
    "profession": "Role",
    "activity": "Session",
    "started_at": "In",
    "ended_at": "Out",
}


def config_for(drop: Path, **config: Any) -> dict[str, Any]:
    return {
        "kind": "csv_drop",
        "name": "signin",
        "directory": str(drop),
        "page_size": 2,
        "timezone": "America/Chicago",
        "activities": {"WS-7": "ACT-002"},
        "fields": FIELDS,
        **config,
    }


def source_for(drop: Path, **config: Any) -> Source:
    return build_source(CsvDropSourceConfig(**config_for(drop, **config)))


def read(source: Source, cursor: str | None = None) -> tuple[list[dict[str, Any]], list[Rejection], list[Page]]:
    pages = list(source.pages(cursor))
    events: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for page in pages:
        for record in page.records:
            for item in source.to_events(record):
                (rejections if isinstance(item, Rejection) else events).append(item)
    return events, rejections, pages


class Crash(Exception):
    pass


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def test_given_file_sent_again_under_a_new_name_when_pulled_then_it_is_skipped(drop: Path) -> None:
    (drop / "day1.csv").write_text(HEADER + ADA + GRACE)
    source = source_for(drop)
    _, _, first = read(source)
    (drop / "day1 (copy).csv").write_bytes((drop / "day1.csv").read_bytes())
    (drop / "day1-final.CSV").write_bytes((drop / "day1.csv").read_bytes())

    events, rejections, _ = read(source, first[-1].next_cursor)

    assert events == [] and rejections == []


def test_given_corrected_file_when_pulled_then_only_the_changed_row_is_a_new_event(drop: Path) -> None:
    (drop / "day1.csv").write_text(HEADER + ADA + GRACE)
    source = source_for(drop)
    before, _, pages = read(source)
    (drop / "day1-corrected.csv").write_text(HEADER + ADA + GRACE.replace("10:30", "10:45"))

    after, _, _ = read(source, pages[-1].next_cursor)

    assert len(after) == 2
    assert {e["event_id"] for e in after} & {e["event_id"] for e in before} == {before[0]["event_id"]}


def test_given_utf8_bom_latin1_and_mixed_files_when_pulled_then_every_name_reads_right(drop: Path) -> None:
    zoe = "zoe@example.org,2260181591,Zoë,Ångström,MD,WS-7,2026-11-18 09:00,2026-11-18 10:00\r\n"
    jose = "jose@example.org,1948219930,José,Muñoz,DO,WS-7,2026-11-18 09:00,2026-11-18 10:00\r\n"
    (drop / "a-bom.csv").write_bytes(b"\xef\xbb\xbf" + (HEADER + zoe).encode())
    (drop / "b-latin1.csv").write_bytes((HEADER + jose).encode("latin-1"))
    (drop / "c-mixed.csv").write_bytes((HEADER + zoe.replace("zoe@", "zoe2@")).encode() + jose.encode("latin-1"))

    events, rejections, _ = read(source_for(drop))

    assert rejections == []
    names = [(e["learner"]["given_name"], e["learner"]["family_name"]) for e in events]
    assert names == [("Zoë", "Ångström"), ("José", "Muñoz"), ("Zoë", "Ångström"), ("José", "Muñoz")]


def test_given_no_fallback_encoding_when_a_row_is_latin1_then_that_row_alone_is_dead_lettered(drop: Path) -> None:
    jose = "jose@example.org,1948219930,José,Muñoz,DO,WS-7,2026-11-18 09:00,2026-11-18 10:00\r\n"
    (drop / "mixed.csv").write_bytes((HEADER + ADA).encode() + jose.encode("latin-1") + GRACE.encode())

    events, rejections, _ = read(source_for(drop, fallback_encoding=None))

    assert [e["learner"]["email"] for e in events] == ["ada@example.org", "grace@example.org"]
    assert [(r.reason_code, r.record.source_ref) for r in rejections] == [("ENCODING_INVALID", "mixed.csv:3")]


def test_given_quoted_cell_spanning_lines_when_pulled_then_one_row_and_later_lines_keep_their_numbers(
    drop: Path,
) -> None:
    header = HEADER.replace("\r\n", ",Notes\r\n")
    quoted = ADA.replace("\r\n", ',"arrived late,\r\nleft early"\r\n')
    (drop / "notes.csv").write_text(header + quoted + GRACE.replace("\r\n", ",\r\n"))

    events, rejections, _ = read(source_for(drop))

    assert rejections == []
    assert [e["source_ref"] for e in events] == ["notes.csv:2", "notes.csv:4"]


def test_given_local_times_when_pulled_then_they_are_read_in_the_configured_zone(drop: Path) -> None:
    (drop / "day1.csv").write_text(HEADER + ADA)

    events, _, _ = read(source_for(drop))

    assert events[0]["started_at"].isoformat() == "2026-11-18T15:00:00+00:00"
    assert events[0]["minutes"] == 60.0


def test_given_crash_after_the_first_page_when_rerun_then_the_rest_of_the_file_is_read_once(
    drop: Path, pipeline_for: Callable[[dict[str, Any]], Any]
) -> None:
    rows = [ADA.replace("ada@", f"ada{n}@").replace("09:00", f"09:{n:02d}") for n in range(5)]
    (drop / "day1.csv").write_text(HEADER + "".join(rows))
    pipeline = pipeline_for(config_for(drop))
    settings = pipeline.settings

    def crash(stats: Any) -> None:
        raise Crash("the process dies after the first page")

    codec = codec_for(settings, "attendance_event")
    with Ledger(settings.ledger_url) as ledger:
        producer = make_producer(settings.kafka_bootstrap)
        try:
            with pytest.raises(Crash):
                pull_source(build_source(settings.sources[0]), codec, producer, ledger, crash)
        finally:
            producer.close()
    after_crash = pipeline.checkpoint()
    pipeline.pull()

    assert '"line": 3' in (after_crash or "")
    emails = [e["learner"]["email"] for e in pipeline.topic_events()]
    assert sorted(emails) == sorted(f"ada{n}@example.org" for n in range(5))


def test_given_missing_directory_when_checked_then_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceCheckError, match="does not exist"):
        source_for(tmp_path / "nowhere").check()


def test_given_directory_and_url_both_set_when_configured_then_refused(drop: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        CsvDropSourceConfig(**config_for(drop, base_url="http://127.0.0.1:1"))
