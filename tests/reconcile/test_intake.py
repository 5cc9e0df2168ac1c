"""The reconcile stage with a real ledger (SQLite and PostgreSQL): events → credits, outbox, deliveries and
reason-coded dead letters in one transaction per batch, and held credits issued once their gap is filled."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.http import HttpClient
from connectors.registries.ama_pra import AmaPraRegistry
from ledger import tables as t
from ledger.evidence import event_cache
from ledger.store import Ledger, record_from_json
from pipeline.config import PROFESSIONS_FILE
from pipeline.kafka.interface import Consumed
from pipeline.stages.reconcile import IntakeStats, reconcile_messages, redecide_unknown_professions
from reconcile.catalog import parse_catalog
from reconcile.professions import ProfessionMap, load_professions
from schemas.codec import AvroCodec

SHIPPED_PROFESSIONS = load_professions(PROFESSIONS_FILE)

pytestmark = [pytest.mark.integration, pytest.mark.dialect]

CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "MOC",
                "title": "Self-assessment with MOC",
                "accreditors": ["ACCME", "ABIM"],
                "designations": {"AMA_PRA_1": "2.00", "ABIM_MOC": "2.00"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            },
            {
                "id": "NURSING",
                "title": "Nursing module",
                "accreditors": ["ACCME", "ANCC"],
                "designations": {"AMA_PRA_1": "1.00", "ANCC_CH": "1.00"},
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            },
            *(
                {
                    # 00:00-04:00 New York time on a daylight-saving day, accredited for that local day only.
                    "id": activity_id,
                    "title": "Overnight live session",
                    "format": "live",
                    "refs": [f"webinar:{activity_id}"],
                    "accreditors": ["ACCME"],
                    "designations": {"AMA_PRA_1": "5.00"},
                    "window": {"start": day, "end": day},
                    "timezone": "America/New_York",
                    "sessions": [{"start": f"{day}T00:00:00", "end": f"{day}T04:00:00"}],
                }
                for activity_id, day in (("OVERNIGHT-SPRING", "2026-03-08"), ("OVERNIGHT-FALL", "2026-11-01"))
            ),
        ]
    }
)
WHEN = datetime(2026, 5, 4, 15, tzinfo=UTC)
REGISTRIES = [AmaPraRegistry("ama-pra", HttpClient("http://127.0.0.1:9"))]  # only `accepts` is called


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


class Feed:
    """Encodes events with the real codec and hands them to the intake as consumed messages."""

    def __init__(self, codec: AvroCodec, ledger: Ledger) -> None:
        self.codec = codec
        self.ledger = ledger
        self.offset = 0

    def messages(self, events: Sequence[dict[str, Any]]) -> list[Consumed]:
        messages = [Consumed(0, self.offset + i, None, self.codec.encode(e)) for i, e in enumerate(events)]
        self.offset += len(events)
        return messages

    def __call__(self, events: Sequence[dict[str, Any]]) -> IntakeStats:
        return reconcile_messages(
            self.messages(events), self.codec, self.ledger, CATALOG, REGISTRIES, professions=SHIPPED_PROFESSIONS
        )


@pytest.fixture
def feed(attendance_codec: AvroCodec, ledger: Ledger) -> Feed:
    return Feed(attendance_codec, ledger)


def latest(ledger: Ledger) -> dict[tuple[str, str], dict[str, Any]]:
    """(activity, credit type) → latest record (the tests below have one learner)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    with ledger.engine.connect() as conn:
        for row in conn.execute(select(t.credits.c.record).order_by(t.credits.c.version)):
            record = record_from_json(row.record)
            found[(record["activity_id"], record["credit_type"])] = record
    return found


def dead_letters(ledger: Ledger) -> list[tuple[str, str, bool]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(t.dead_letters).order_by(t.dead_letters.c.source_ref, t.dead_letters.c.reason_code))
        return [(r.source_ref, r.reason_code, r.resolved_at is not None) for r in rows]


def count(ledger: Ledger, table: Any) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def test_given_a_physician_without_board_id_when_reconciled_then_ama_flows_and_moc_waits_in_a_dead_letter(
    ev: Any, feed: Feed, ledger: Ledger
) -> None:
    stats = feed([ev("c1", activity="MOC", when=WHEN, dob_month_day="03-14")])

    assert (stats.accepted, stats.rejected, stats.held_back, stats.credit_versions) == (1, 0, 1, 1)
    assert {k: (r["version"], r["status"]) for k, r in latest(ledger).items()} == {("MOC", "AMA_PRA_1"): (1, "AWARDED")}
    assert dead_letters(ledger) == [("lms:c1", "MISSING_BOARD_IDENTITY", False)]

    # The board id arrives with evidence for another activity: the held MOC record is decided again.
    feed(
        [
            ev(
                "c2",
                activity="NURSING",
                when=WHEN + timedelta(days=1),
                board_id="ABIM-42",
                board="ABIM",
                moc_consent=True,
            )
        ]
    )

    records = latest(ledger)
    moc = records[("MOC", "ABIM_MOC")]
    assert (moc["version"], moc["status"], moc["amount"], moc["accreditor"]) == (1, "AWARDED", 2, "ACCME")
    assert (moc["learner"]["board_id"], moc["learner"]["dob_month_day"]) == ("ABIM-42", "03-14")
    assert moc["completed_on"].isoformat() == "2026-05-04"
    assert dead_letters(ledger) == [("lms:c1", "MISSING_BOARD_IDENTITY", True)]
    assert count(ledger, t.outbox) == count(ledger, t.credits) == 3


def test_given_a_webinar_attendee_known_only_by_email_when_their_profession_arrives_then_credit_issued(
    ev: Any, feed: Feed, ledger: Ledger
) -> None:
    feed([ev("w1", source="webinar", activity="NURSING", when=WHEN, npi=None, profession=None, email="nurse@x.org")])
    assert latest(ledger) == {}
    assert dead_letters(ledger) == [("webinar:w1", "UNKNOWN_PROFESSION", False)]

    licence = {"number": "RN-1", "state": "ca", "profession": "RN"}
    feed([ev("s1", activity="MOC", when=WHEN, npi=None, profession=None, email="NURSE@x.org", licence=licence)])

    [(key, record)] = latest(ledger).items()
    assert key == ("NURSING", "ANCC_CH") and record["accreditor"] == "ANCC"
    assert {k: record["learner"][k] for k in ("licence_number", "licence_state", "profession")} == {
        "licence_number": "RN-1",
        "licence_state": "CA",
        "profession": "RN",
    }
    assert dead_letters(ledger) == [("webinar:w1", "UNKNOWN_PROFESSION", True)]


def test_given_a_state_board_licence_code_when_reconciled_then_credit_for_the_mapped_profession(
    ev: Any, feed: Feed, ledger: Ledger
) -> None:
    licence = {"number": "AP-7", "state": "wa", "profession": "ARNP"}
    feed([ev("n1", activity="NURSING", when=WHEN, npi=None, profession=None, email="np@x.org", licence=licence)])

    [(key, record)] = latest(ledger).items()
    assert key == ("NURSING", "ANCC_CH") and record["learner"]["profession"] == "ARNP"
    assert dead_letters(ledger) == []


def test_given_a_code_the_mapping_lacks_when_the_mapping_learns_it_then_the_held_credit_is_issued(
    ev: Any, feed: Feed, ledger: Ledger
) -> None:
    licence = {"number": "RN-9", "state": "tx", "profession": "R.N.P."}
    feed([ev("n1", activity="NURSING", when=WHEN, npi=None, profession=None, email="rnp@x.org", licence=licence)])

    assert latest(ledger) == {}
    assert dead_letters(ledger) == [("lms:n1", "UNKNOWN_PROFESSION", False)]
    with ledger.engine.connect() as conn:
        reason = conn.scalar(select(t.dead_letters.c.reason))
    assert reason.startswith("the licence/profession code RNP is not in the profession mapping")
    assert "rnp@x.org" not in reason and "RN-9" not in reason

    # The operator adds the code; the next run decides the held pair again, with no new event.
    learned = ProfessionMap({**SHIPPED_PROFESSIONS.codes, "RNP": "NP"})
    stats = redecide_unknown_professions(feed.codec, ledger, CATALOG, REGISTRIES, learned)

    assert stats.credit_versions == 1
    assert {k: r["status"] for k, r in latest(ledger).items()} == {("NURSING", "ANCC_CH"): "AWARDED"}
    assert dead_letters(ledger) == [("lms:n1", "UNKNOWN_PROFESSION", True)]
    assert redecide_unknown_professions(feed.codec, ledger, CATALOG, REGISTRIES, learned) == IntakeStats()


def test_given_a_code_the_mapping_lacks_when_the_learner_reports_a_known_one_then_the_held_credit_is_issued(
    ev: Any, feed: Feed, ledger: Ledger
) -> None:
    feed([ev("n1", activity="NURSING", when=WHEN, npi=None, profession="Nurse-RN-II", email="rn@x.org")])
    assert dead_letters(ledger) == [("lms:n1", "UNKNOWN_PROFESSION", False)]

    feed([ev("n2", activity="MOC", when=WHEN + timedelta(days=1), npi=None, profession="RN", email="rn@x.org")])

    assert {k: r["status"] for k, r in latest(ledger).items()} == {("NURSING", "ANCC_CH"): "AWARDED"}
    assert dead_letters(ledger) == [("lms:n1", "UNKNOWN_PROFESSION", True)]


def test_given_the_same_batch_twice_when_reconciled_then_nothing_new_and_rejections_only_counted_again(
    ev: Any, feed: Feed, ledger: Ledger
) -> None:
    events = [
        ev("c1", activity="MOC", when=WHEN, board_id="ABIM-1", dob_month_day="01-02", board="ABIM", moc_consent=True),
        ev("x1", activity="NOPE", when=WHEN),
        ev("bad", activity="MOC", when=WHEN, npi="1234567890"),
        ev("other", activity="MOC", when=WHEN, npi="1493027167", board_id="ABIM-1"),
    ]
    first = feed(events)
    again = feed(events)

    assert (first.accepted, first.rejected, first.credit_versions) == (1, 3, 2)
    assert (again.duplicates, again.accepted, again.credit_versions) == (1, 0, 0)
    assert [(ref, code) for ref, code, _ in dead_letters(ledger)] == [
        ("lms:bad", "INVALID_NPI"),
        ("lms:other", "IDENTITY_CONFLICT"),
        ("lms:x1", "UNKNOWN_ACTIVITY"),
    ]
    with ledger.engine.connect() as conn:
        assert sorted(conn.scalars(select(t.dead_letters.c.attempts))) == [2, 2, 2]
        reasons = list(conn.scalars(select(t.dead_letters.c.reason)))
    assert not any("1493027167" in r or "1234567890" in r or "ABIM-1" in r for r in reasons)
    with ledger.engine.connect() as conn:
        deliveries = conn.execute(select(t.deliveries.c.registry, t.deliveries.c.state)).all()
    # The AMA credit and the MOC points: PARS takes both (MOC goes to the learner's board through it).
    assert deliveries == [("ama-pra", "pending")] * 2


def test_given_a_void_in_a_later_batch_when_reconciled_then_revoked_version_on_the_outbox(
    ev: Any, feed: Feed, ledger: Ledger
) -> None:
    feed([ev("c1", activity="NURSING", when=WHEN)])
    feed([ev("v1", "VOIDED", voids="c1", when=WHEN + timedelta(days=1))])
    record = latest(ledger)[("NURSING", "AMA_PRA_1")]
    assert (record["version"], record["status"], record["evidence"]) == (2, "REVOKED", [])
    with ledger.engine.connect() as conn:
        assert conn.execute(select(t.outbox.c.version).order_by(t.outbox.c.id)).scalars().all() == [1, 2]


@pytest.mark.parametrize(
    ("activity_id", "joined", "left", "amount", "completed_on"),
    [
        # 4 wall-clock hours that last 3 (EST -> EDT at 07:00Z): 05:00Z-08:00Z.
        (
            "OVERNIGHT-SPRING",
            datetime(2026, 3, 8, 4, 45, tzinfo=UTC),
            datetime(2026, 3, 8, 8, 15, tzinfo=UTC),
            3,
            "2026-03-08",
        ),
        # 4 wall-clock hours that last 5 (EDT -> EST at 06:00Z): 04:00Z-09:00Z.
        (
            "OVERNIGHT-FALL",
            datetime(2026, 11, 1, 3, 45, tzinfo=UTC),
            datetime(2026, 11, 1, 9, 15, tzinfo=UTC),
            5,
            "2026-11-01",
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_given_a_local_session_on_a_dst_day_when_reconciled_then_the_ledger_credits_real_elapsed_hours(
    ev: Any,
    feed: Feed,
    ledger: Ledger,
    activity_id: str,
    joined: datetime,
    left: datetime,
    amount: int,
    completed_on: str,
) -> None:
    """A webinar attendee present from before the session to after it: the credit is the session's real length."""
    attended = ev(
        "w1", "ATTENDED", source="webinar", activity=f"webinar:{activity_id}", when=left, start=joined, end=left
    )
    stats = feed([attended])

    assert (stats.accepted, stats.rejected, stats.credit_versions) == (1, 0, 1)
    record = latest(ledger)[(activity_id, "AMA_PRA_1")]
    assert (record["status"], record["amount"], record["completed_on"].isoformat()) == ("AWARDED", amount, completed_on)


def test_given_two_reconcilers_on_one_ledger_when_each_takes_a_void_or_its_event_then_the_credit_is_revoked(
    ev: Any, feed: Feed, ledger: Ledger, ledger_url: str
) -> None:
    """The reconcile stage caches event bodies per Ledger; which events a pair has always comes from the ledger,
    so evidence another reconciler (or this one before a restart) stored is decided with, and a cache too small
    for a batch only costs reads."""
    feed([ev("c1", activity="NURSING", when=WHEN, profession="RN")])
    other = Ledger(ledger_url)
    event_cache(other).size = 1
    try:
        second = Feed(feed.codec, other)
        second.offset = feed.offset
        second(
            [
                ev("c2", activity="NURSING", when=WHEN + timedelta(days=1), profession="RN"),
                ev("v1", "VOIDED", voids="c1"),
            ]
        )
    finally:
        other.close()

    records = latest(ledger)
    assert {k: (r["version"], r["status"]) for k, r in records.items()} == {("NURSING", "ANCC_CH"): (2, "AWARDED")}
    assert records[("NURSING", "ANCC_CH")]["evidence"] == ["lms:c2"]
    assert records[("NURSING", "ANCC_CH")]["completed_on"].isoformat() == "2026-05-05"
