"""Property: the same evidence, in any order, any number of times, in any batches — voids before or after
what they void — converges to the same final records (DESIGN §1 and §4.4). Checked on the pure engine over
many examples, and through `pipeline.stages.reconcile` with a real SQLite ledger over fewer."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectors.http import HttpClient
from connectors.registries.ama_pra import AmaPraRegistry
from ledger import tables as t
from ledger.store import Ledger, record_from_json
from pipeline.config import PROFESSIONS_FILE
from pipeline.kafka.interface import Consumed
from pipeline.stages.reconcile import reconcile_messages
from reconcile.catalog import parse_catalog
from reconcile.professions import load_professions
from schemas.codec import AvroCodec

SHIPPED_PROFESSIONS = load_professions(PROFESSIONS_FILE)

CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "LIVE",
                "title": "Live",
                "format": "live",
                "accreditors": ["ACCME", "ANCC", "AANP", "AAPA"],
                "designations": {"AMA_PRA_1": "2.75", "ANCC_CH": "3.00", "ANCC_PHARM": "1.00", "AAPA_1": "2.75"},
                "window": {"start": "2026-03-01", "end": "2026-03-31"},
                "sessions": [{"start": "2026-03-10T09:00:00Z", "end": "2026-03-10T12:00:00Z"}],
                "breaks": [{"start": "2026-03-10T10:25:00Z", "end": "2026-03-10T10:40:00Z"}],
                "evaluation_minutes": 10,
            },
            {
                "id": "ENDURING",
                "title": "Enduring",
                "accreditors": ["ACCME", "ABIM", "ANCC"],
                "designations": {"AMA_PRA_1": "1.50", "ABIM_MOC": "1.00", "ANCC_CH": "1.50"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            },
        ]
    }
)
START = datetime(2026, 3, 10, 9, tzinfo=UTC)
# Every event of a learner carries their strongest key, so learner ids do not depend on order.
LEARNERS: dict[str, dict[str, Any]] = {
    "md": {
        "npi": "1234567893",
        "profession": "MD",
        "board_id": "ABIM-1",
        "dob_month_day": "01-02",
        "board": "ABIM",
        "moc_consent": True,
    },
    "md-no-board": {"npi": "1493027167", "profession": "DO"},
    "np": {
        "npi": None,
        "profession": "NP",
        "licence": {"number": "NP77", "state": "CA", "profession": "NP"},
        "email": "np@example.org",
    },
    "pa": {"npi": "1278459031", "profession": "PA"},
}
CLAIM_TYPE = {"md": "AMA_PRA_1", "md-no-board": "AMA_PRA_1", "np": "ANCC_CH", "pa": "AAPA_1"}

attend = st.tuples(st.just("attend"), st.sampled_from(sorted(LEARNERS)), st.integers(-30, 190), st.integers(1, 120))
complete = st.tuples(
    st.just("complete"), st.sampled_from(sorted(LEARNERS)), st.sampled_from(["LIVE", "ENDURING"]), st.integers(0, 3)
)
claim = st.tuples(
    st.just("claim"),
    st.sampled_from(sorted(LEARNERS)),
    st.sampled_from(["LIVE", "ENDURING"]),
    st.sampled_from([0.5, 1.1, 2.0]),
)
void = st.tuples(st.just("void"), st.integers(0, 30), st.just(0), st.just(0))
facts = st.lists(st.one_of(attend, complete, claim, void), min_size=1, max_size=14)


def events_of(ev: Any, drawn: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for index, (kind, who, a, b) in enumerate(drawn):
        event_id = f"e{index}"
        if kind == "void":
            targets = [e["event_id"] for e in events if e["kind"] != "VOIDED"] or ["never-seen"]
            events.append(ev(event_id, "VOIDED", voids=targets[who % len(targets)], when=START + timedelta(days=5)))
            continue
        learner = dict(LEARNERS[who])
        if kind == "attend":
            start, end = START + timedelta(minutes=a), START + timedelta(minutes=a + b)
            events.append(ev(event_id, "ATTENDED", activity="LIVE", start=start, end=end, when=start, **learner))
        elif kind == "complete":
            events.append(ev(event_id, "COMPLETED", activity=a, when=START + timedelta(hours=4, days=b), **learner))
        else:
            claimed = [(CLAIM_TYPE[who], b)]
            events.append(
                ev(event_id, "CLAIMED", activity=a, when=START + timedelta(hours=5), claims=claimed, **learner)
            )
    return events


def reshuffled(data: st.DataObject, events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A permutation of the events with some repeated, cut into batches."""
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    stream = data.draw(st.permutations(events + repeats))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=4)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if stream[a:b]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=facts, data=st.data())
def test_given_any_permutation_duplication_and_batching_when_reconciled_then_same_final_records(
    ev: Any, memory_run: Any, drawn: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    events = events_of(ev, drawn)
    truth = memory_run(CATALOG)
    truth.batch(events)

    run = memory_run(CATALOG)
    for batch in reshuffled(data, events):
        run.batch(batch)

    assert run.awarded() == truth.awarded()
    assert set(run.holds) == set(truth.holds)
    for versions in run.records.values():
        assert [s.version for s in versions] == list(range(1, len(versions) + 1))
    assert run.batch(events) == []  # and the same evidence once more changes nothing


def ledger_awarded(ledger: Ledger) -> dict[tuple[str, str, str], tuple[str, str]]:
    latest: dict[str, dict[str, Any]] = {}
    with ledger.engine.connect() as conn:
        for row in conn.execute(select(t.credits.c.record).order_by(t.credits.c.version)):
            record = record_from_json(row.record)
            latest[record["record_id"]] = record
    return {
        (r["learner_id"], r["activity_id"], r["credit_type"]): (f"{r['amount']:.2f}", r["completed_on"].isoformat())
        for r in latest.values()
        if r["status"] == "AWARDED"
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=facts, data=st.data())
def test_given_any_batching_through_the_intake_when_reconciled_then_ledger_equals_the_engines_truth(
    ev: Any, memory_run: Any, attendance_codec: AvroCodec, drawn: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    events = events_of(ev, drawn)
    truth = memory_run(CATALOG)
    truth.batch(events)
    registries = [AmaPraRegistry("ama-pra", HttpClient("http://127.0.0.1:9"))]  # only `accepts` is called
    with tempfile.TemporaryDirectory() as tmp, Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}") as ledger:
        ledger.migrate()
        offset = 0
        for batch in reshuffled(data, events):
            messages = []
            for event in batch:
                messages.append(Consumed(0, offset, None, attendance_codec.encode(event)))
                offset += 1
            reconcile_messages(messages, attendance_codec, ledger, CATALOG, registries, professions=SHIPPED_PROFESSIONS)
        assert ledger_awarded(ledger) == truth.awarded()
