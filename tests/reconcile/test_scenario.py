"""Scenario: 500 generated learners (MD, DO, RN, NP, PA) through `pipeline.stages.reconcile.reconcile_messages` into a
real ledger (SQLite and PostgreSQL), with mixed sources (LMS completions, webinar join/leave rows known only by
email, sign-in sheets known only by name and dob, learner claims), duplicates, voids before and after what
they void, and identity collisions.

The expected ledger is computed here from each learner's *plan* with whole-minute sets and fractions — not
from the events and not by the code under test.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from math import floor
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.http import HttpClient
from connectors.registries.ama_pra import AmaPraRegistry
from ledger import tables as t
from ledger.store import Ledger, record_from_json
from pipeline.config import PROFESSIONS_FILE
from pipeline.kafka.interface import Consumed
from pipeline.stages.reconcile import IntakeStats, reconcile_messages
from reconcile.catalog import parse_catalog
from reconcile.professions import load_professions
from schemas.codec import AvroCodec

SHIPPED_PROFESSIONS = load_professions(PROFESSIONS_FILE)

pytestmark = pytest.mark.integration

CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "LIVE-A",
                "title": "Live workshop",
                "format": "live",
                "refs": ["webinar:9001"],
                "accreditors": ["ACCME", "ANCC", "AANP", "AAPA"],
                "designations": {
                    "AMA_PRA_1": "2.75",
                    "ANCC_CH": "3.00",
                    "ANCC_PHARM": "1.00",
                    "AANP_CH": "2.75",
                    "AANP_RX": "1.00",
                    "AAPA_1": "2.75",
                },
                "window": {"start": "2026-03-01", "end": "2026-03-31"},
                "sessions": [{"start": "2026-03-10T09:00:00Z", "end": "2026-03-10T12:00:00Z"}],
                "breaks": [{"start": "2026-03-10T10:25:00Z", "end": "2026-03-10T10:40:00Z"}],
                "evaluation_minutes": 10,
            },
            {
                "id": "END-B",
                "title": "Enduring module",
                "refs": ["https://lms/END-B"],
                "accreditors": ["ACCME", "ABIM", "ANCC", "AAPA"],
                "designations": {"AMA_PRA_1": "1.50", "ABIM_MOC": "1.00", "ANCC_CH": "1.50", "AAPA_1": "1.50"},
                "increments": {"ABIM_MOC": "1.00"},
                "window": {"start": "2026-01-01", "end": "2026-06-30"},
            },
            {"id": "JOURNAL-C", "title": "Journal club", "window": {"start": "2026-01-01", "end": "2026-12-31"}},
        ]
    }
)
SESSION = datetime(2026, 3, 10, 9, tzinfo=UTC)
SESSION_MINUTES = frozenset(range(0, 180)) - frozenset(range(85, 100))  # 09:00-12:00 minus the 10:25 break
LIVE_DAY = "2026-03-10"
BATCH = 150
LEARNERS = 500


def npi_for(number: int) -> str:
    """A made-up NPI that passes the CMS check digit (Luhn over 80840 + nine digits), computed here."""
    body = f"2{number:08d}"
    digits = [int(c) for c in "80840" + body]
    total = sum(sum(divmod(d * 2, 10)) if i % 2 == 0 else d for i, d in enumerate(reversed(digits)))
    return body + str((10 - total % 10) % 10)


@dataclass
class Person:
    number: int
    profession: str
    board: bool
    state: str

    @property
    def physician(self) -> bool:
        return self.profession in ("MD", "DO")

    @property
    def npi(self) -> str | None:
        return npi_for(self.number) if self.profession in ("MD", "DO", "PA") else None

    @property
    def email(self) -> str:
        return f"l{self.number}@example.org"

    @property
    def family(self) -> str:
        return f"Family{self.number}"

    @property
    def dob(self) -> str:
        return f"{self.number % 12 + 1:02d}-{self.number % 28 + 1:02d}"

    @property
    def licence(self) -> dict[str, str] | None:
        if self.profession not in ("RN", "NP"):
            return None
        return {"number": f"{self.profession}{self.number:05d}", "state": self.state, "profession": self.profession}

    def full(self, email: str | None = None) -> dict[str, Any]:
        """The learner block an LMS or claims source sends."""
        return {
            "npi": self.npi,
            "email": email or self.email,
            "licence": self.licence,
            "board_id": f"ABIM{self.number}" if self.board else None,
            "given_name": f"Given{self.number}",
            "family_name": self.family,
            "dob_month_day": self.dob,
            "profession": self.profession,
            "board": "ABIM" if self.board else None,
            "moc_consent": True if self.board else None,
        }


@dataclass
class Plan:
    """What a learner did, as the oracle sees it."""

    person: Person
    segments: list[tuple[int, int]] = field(default_factory=list)  # minutes after 09:00
    segment_source: str = "webinar"
    evaluated: bool = False
    ama_claim: Fraction | None = None
    enduring: str | None = None  # ok, voided-later, void-first, outside
    enduring_day: int = 0
    second_completion: bool = False
    category_2: Fraction | None = None
    category_2_invalid: bool = False
    conflict: bool = False  # uses another learner's email: every event an identity conflict
    collides_with: str | None = None


@dataclass
class Emitted:
    event: dict[str, Any]
    phase: int
    person: int | None
    tail: bool = False  # after every normal event of its phase (collisions must follow what they collide with)


class Scenario:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.rng = rng
        professions, states = ("MD", "DO", "RN", "NP", "PA"), ("CA", "TX", "NY", "FL")
        self.plans = [
            Plan(Person(n, rng.choice(professions), rng.random() < 0.6, rng.choice(states))) for n in range(LEARNERS)
        ]
        self.emitted: list[Emitted] = []
        self.counter = 0
        for plan in self.plans:
            self._plan(plan)
        self._collisions()
        for plan in self.plans:
            self._emit(plan)
        self._stray_events()

    def _plan(self, plan: Plan) -> None:
        rng, person = self.rng, plan.person
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 3)):
                start = rng.randint(-20, 170)
                plan.segments.append((start, start + rng.randint(5, 120)))
            plan.segment_source = "signin" if person.profession == "RN" and rng.random() < 0.3 else "webinar"
        plan.evaluated = rng.random() < 0.6 if plan.segments else rng.random() < 0.2
        if person.physician and (plan.segments or plan.evaluated) and rng.random() < 0.25:
            plan.ama_claim = rng.choice((Fraction(1, 2), Fraction(1), Fraction(3)))
        roll = rng.random()
        if roll < 0.5:
            plan.enduring = "ok"
        elif roll < 0.56:
            plan.enduring = "voided-later"
        elif roll < 0.6:
            plan.enduring = "void-first"
        elif roll < 0.63:
            plan.enduring = "outside"
        plan.enduring_day = rng.randint(1, 20)
        plan.second_completion = plan.enduring == "ok" and rng.random() < 0.15
        if person.physician and rng.random() < 0.15:
            plan.category_2 = rng.choice((Fraction(1), Fraction(5, 2)))
        plan.category_2_invalid = person.physician and rng.random() < 0.02

    def _collisions(self) -> None:
        """Ten physicians type a colleague's email (the colleague completed END-B, so is known by it)."""
        known = [p for p in self.plans if p.person.physician and p.enduring == "ok"]
        for plan in self.rng.sample([p for p in self.plans if p.person.physician and p not in known], 10):
            plan.conflict = True
            plan.segments, plan.evaluated, plan.ama_claim, plan.category_2 = [], False, None, None
            plan.enduring, plan.second_completion, plan.category_2_invalid = "ok", False, False
            plan.collides_with = self.rng.choice(known).person.email

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:05d}"

    def event(
        self, source: str, kind: str, activity: str | None, when: datetime, learner: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        event_id = self._id(source)
        return {
            "event_id": event_id,
            "source": source,
            "source_ref": f"{source}:{event_id}",
            "kind": kind,
            "occurred_at": when,
            "started_at": extra.get("started_at"),
            "ended_at": extra.get("ended_at"),
            "minutes": None,
            "activity_ref": activity,
            "learner": learner,
            "claimed": extra.get("claimed"),
            "voids_event_id": extra.get("voids_event_id"),
        }

    def _add(self, event: dict[str, Any], phase: int, person: int | None, tail: bool = False) -> dict[str, Any]:
        self.emitted.append(Emitted(event, phase, person, tail))
        return event

    def _emit(self, plan: Plan) -> None:
        person, n = plan.person, plan.person.number
        if plan.conflict:
            learner = person.full(email=plan.collides_with)
            day = SESSION + timedelta(days=plan.enduring_day)
            self._add(self.event("lms", "COMPLETED", "https://lms/END-B", day, learner), 1, n, tail=True)
            return
        for start, end in plan.segments:
            if plan.segment_source == "webinar":
                learner = {"email": person.email.upper()}  # webinar rows carry an email, often re-cased
            else:
                learner = {
                    "given_name": f"given{person.number}",
                    "family_name": person.family.upper(),
                    "dob_month_day": person.dob,
                }
            times = {"started_at": SESSION + timedelta(minutes=start), "ended_at": SESSION + timedelta(minutes=end)}
            self._add(
                self.event(plan.segment_source, "ATTENDED", "webinar:9001", times["started_at"], learner, **times), 1, n
            )
            if self.rng.random() < 0.3:  # the platform reports the same join/leave twice, under a new row id
                self._add(
                    self.event(plan.segment_source, "ATTENDED", "LIVE-A", times["started_at"], learner, **times), 1, n
                )
        if plan.evaluated:
            self._add(self.event("lms", "COMPLETED", "LIVE-A", SESSION + timedelta(hours=4), person.full()), 1, n)
        if plan.ama_claim is not None:
            claim = [{"credit_type": "AMA_PRA_1", "amount": float(plan.ama_claim)}]
            self._add(
                self.event("claims", "CLAIMED", "LIVE-A", SESSION + timedelta(hours=5), person.full(), claimed=claim),
                1,
                n,
            )
        self._emit_enduring(plan)
        if plan.category_2 is not None:
            claim = [{"credit_type": "AMA_PRA_2", "amount": float(plan.category_2)}]
            when = SESSION + timedelta(days=30)
            self._add(self.event("claims", "CLAIMED", "JOURNAL-C", when, person.full(), claimed=claim), 1, n)
        if plan.category_2_invalid:
            claim = [{"credit_type": "AMA_PRA_2", "amount": 30.0}]
            self._add(self.event("claims", "CLAIMED", "JOURNAL-C", SESSION, person.full(), claimed=claim), 1, n)

    def _emit_enduring(self, plan: Plan) -> None:
        person, n = plan.person, plan.person.number
        if plan.enduring is None:
            return
        when = SESSION + timedelta(days=plan.enduring_day)
        if plan.enduring == "outside":
            self._add(self.event("lms", "COMPLETED", "END-B", datetime(2026, 7, 5, tzinfo=UTC), person.full()), 1, n)
            return
        completion = self.event("lms", "COMPLETED", "https://lms/END-B", when, person.full())
        void = self.event("lms", "VOIDED", None, when + timedelta(days=1), {}, voids_event_id=completion["event_id"])
        if plan.enduring == "void-first":
            self._add(void, 1, n)
            self._add(completion, 2, n)
            return
        self._add(completion, 1, n)
        if self.rng.random() < 0.2:  # the same statement sent again
            self._add(completion, 1, n)
        if plan.second_completion:
            self._add(self.event("lms", "COMPLETED", "END-B", when + timedelta(days=3), person.full()), 1, n)
        if plan.enduring == "voided-later":
            self._add(void, 2, n)

    def _stray_events(self) -> None:
        physicians = [p.person for p in self.plans if p.person.physician and not p.conflict]
        for person in self.rng.sample(physicians, 6):
            learner = {**person.full(), "npi": person.npi[:9] + str((int(person.npi[9]) + 1) % 10)}  # type: ignore[index]
            self._add(self.event("csv", "COMPLETED", "END-B", SESSION, learner), 1, None)
        for person in self.rng.sample(physicians, 8):
            self._add(self.event("lms", "COMPLETED", "ACT-404", SESSION, person.full()), 1, None)
        known = [p.person for p in self.plans if p.enduring == "ok" and not p.conflict]
        for one, other in zip(self.rng.sample(known, 4), self.rng.sample(known, 4), strict=True):
            if one.number != other.number:
                learner = one.full(email=other.email)  # one's strong ids, the other's email
                self._add(self.event("lms", "COMPLETED", "END-B", SESSION, learner), 2, None, tail=True)

    def batches(self) -> list[list[Emitted]]:
        """Phase 1 shuffled (collisions last), then phase 2 plus a replay of 200 phase-1 events, in batches."""
        batches: list[list[Emitted]] = []
        for phase in (1, 2):
            normal = [e for e in self.emitted if e.phase == phase and not e.tail]
            self.rng.shuffle(normal)
            if phase == 2:
                normal += self.rng.sample([e for e in self.emitted if e.phase == 1], 200)
            stream = normal + [e for e in self.emitted if e.phase == phase and e.tail]
            batches += [stream[i : i + BATCH] for i in range(0, len(stream), BATCH)]
        return batches


def q(value: Fraction) -> str:
    return f"{float(value):.2f}"


def nearest(minutes: Fraction) -> Fraction:
    """AMA/AAPA: nearest quarter hour, half up; nothing below 15 minutes."""
    return Fraction(0) if minutes < 15 else Fraction(floor(minutes / 15 + Fraction(1, 2)), 4)


def down(hours: Fraction) -> Fraction:
    return Fraction(floor(hours * 4), 4)


Expected = dict[tuple[int, str, str], tuple[str, str, str]]


def expected_records(scenario: Scenario) -> Expected:
    expected: Expected = {}

    def put(n: int, activity: str, credit_type: str, amount: Fraction, day: str, status: str = "AWARDED") -> None:
        if amount > 0:
            expected[(n, activity, credit_type)] = (status, q(amount), day)

    for plan in scenario.plans:
        person, n = plan.person, plan.person.number
        if plan.conflict or not profession_known(plan):
            continue
        attended: set[int] = set().union(*(range(start, end) for start, end in plan.segments))
        minutes = len(attended & SESSION_MINUTES)
        timed = bool(plan.segments)
        if timed or plan.evaluated:
            p = person.profession
            if p in ("MD", "DO"):
                ama = min(nearest(Fraction(minutes)), Fraction(11, 4)) if timed else Fraction(11, 4)
                if plan.ama_claim is not None:
                    ama = min(ama, nearest(plan.ama_claim * 60))
                put(n, "LIVE-A", "AMA_PRA_1", ama, LIVE_DAY)
            if p in ("RN", "NP"):
                eval_minutes = 10 if plan.evaluated else 0
                ch = min(down(Fraction(minutes + eval_minutes, 60)), Fraction(3)) if timed else Fraction(3)
                put(n, "LIVE-A", "ANCC_CH", ch, LIVE_DAY)
                if p == "NP":
                    put(n, "LIVE-A", "ANCC_PHARM", down(ch / 3), LIVE_DAY)
                    aanp = min(down(Fraction(minutes, 60)), Fraction(11, 4)) if timed else Fraction(11, 4)
                    put(n, "LIVE-A", "AANP_CH", aanp, LIVE_DAY)
                    put(n, "LIVE-A", "AANP_RX", down(aanp / Fraction(11, 4)), LIVE_DAY)
            if p == "PA":
                put(
                    n,
                    "LIVE-A",
                    "AAPA_1",
                    min(nearest(Fraction(minutes)), Fraction(11, 4)) if timed else Fraction(11, 4),
                    LIVE_DAY,
                )
        if plan.enduring in ("ok", "voided-later"):
            status = "AWARDED" if plan.enduring == "ok" else "REVOKED"
            day = (SESSION + timedelta(days=plan.enduring_day)).date().isoformat()
            credit_type = {"MD": "AMA_PRA_1", "DO": "AMA_PRA_1", "RN": "ANCC_CH", "NP": "ANCC_CH", "PA": "AAPA_1"}[
                person.profession
            ]
            put(n, "END-B", credit_type, Fraction(3, 2), day, status)
            if person.physician and person.board:
                put(n, "END-B", "ABIM_MOC", Fraction(1), day, status)
        if plan.category_2 is not None:
            put(n, "JOURNAL-C", "AMA_PRA_2", plan.category_2, (SESSION + timedelta(days=30)).date().isoformat())
    return expected


def profession_known(plan: Plan) -> bool:
    """Some accepted event of the learner states a profession (segment rows never do)."""
    return (
        plan.evaluated
        or plan.ama_claim is not None
        or plan.enduring in ("ok", "voided-later", "void-first")
        or plan.category_2 is not None
    )


def expected_dead_letters(scenario: Scenario, batches: list[list[Emitted]]) -> dict[tuple[str, str], bool]:
    """source_ref, reason code → resolved."""
    expected: dict[tuple[str, str], bool] = {}
    batch_of: dict[str, int] = {}
    for index, batch in enumerate(batches):
        for emitted in batch:
            batch_of.setdefault(emitted.event["source_ref"], index)
    plans = {p.person.number: p for p in scenario.plans}
    first_known: dict[int, int] = {}
    for emitted in scenario.emitted:
        event, ref = emitted.event, emitted.event["source_ref"]
        plan = plans.get(emitted.person) if emitted.person is not None else None
        if emitted.person is None:
            if event["activity_ref"] == "ACT-404":
                expected[(ref, "UNKNOWN_ACTIVITY")] = False
            elif event["source"] == "csv":
                expected[(ref, "INVALID_NPI")] = False
            else:
                expected[(ref, "IDENTITY_CONFLICT")] = False
            continue
        assert plan is not None
        if plan.conflict:
            expected[(ref, "IDENTITY_CONFLICT")] = False
        elif event["occurred_at"].month == 7:
            expected[(ref, "OUTSIDE_ACTIVITY_WINDOW")] = False
        elif any(c["amount"] > 24 for c in event["claimed"] or ()):
            expected[(ref, "INVALID_CLAIM")] = False
        elif event["learner"].get("profession"):
            first_known[plan.person.number] = min(first_known.get(plan.person.number, 10**6), batch_of[ref])
    for emitted in scenario.emitted:
        plan = plans.get(emitted.person) if emitted.person is not None else None
        if plan is None or plan.conflict:
            continue
        ref, n = emitted.event["source_ref"], plan.person.number
        if emitted.event["source"] in ("webinar", "signin") and batch_of[ref] < first_known.get(n, 10**6):
            expected[(ref, "UNKNOWN_PROFESSION")] = n in first_known
        no_board = plan.person.physician and not plan.person.board
        enduring = emitted.event["activity_ref"] in ("END-B", "https://lms/END-B")
        if no_board and enduring and emitted.event["kind"] == "COMPLETED" and plan.enduring in ("ok", "voided-later"):
            expected[(ref, "MISSING_BOARD_IDENTITY")] = plan.enduring == "voided-later"
    return expected


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


def test_given_500_learners_from_mixed_sources_when_reconciled_in_batches_then_exactly_the_expected_ledger(
    ledger: Ledger, attendance_codec: AvroCodec
) -> None:
    scenario = Scenario(seed=20260310)
    batches = scenario.batches()
    registries = [AmaPraRegistry("ama-pra", HttpClient("http://127.0.0.1:9"))]  # only `accepts` is called
    total = IntakeStats()
    offset = 0
    for batch in batches:
        messages = [Consumed(0, offset + i, None, attendance_codec.encode(e.event)) for i, e in enumerate(batch)]
        offset += len(batch)
        stats = reconcile_messages(
            messages, attendance_codec, ledger, CATALOG, registries, professions=SHIPPED_PROFESSIONS
        )
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(stats, name))

    by_family = {p.person.family: p.person for p in scenario.plans}
    records: dict[str, list[dict[str, Any]]] = {}
    with ledger.engine.connect() as conn:
        for row in conn.execute(select(t.credits.c.record).order_by(t.credits.c.version)):
            record = record_from_json(row.record)
            records.setdefault(record["record_id"], []).append(record)
        dead = {(r.source_ref, r.reason_code): r.resolved_at is not None for r in conn.execute(select(t.dead_letters))}
        outbox = conn.scalar(select(func.count()).select_from(t.outbox))
        deliveries = conn.scalar(select(func.count()).select_from(t.deliveries))

    actual: Expected = {}
    for versions in records.values():
        assert [r["version"] for r in versions] == list(range(1, len(versions) + 1))
        last = versions[-1]
        person = by_family[last["learner"]["family_name"]]
        assert last["learner"]["npi"] == person.npi
        assert last["learner"]["licence_number"] == (person.licence or {}).get("number")
        assert last["learner"]["board_id"] == (f"ABIM{person.number}" if person.board else None)
        if last["status"] == "REVOKED":
            assert len(versions) == 2 and versions[0]["status"] == "AWARDED"
        key = (person.number, last["activity_id"], last["credit_type"])
        assert key not in actual, "one record per (learner, activity, credit type)"
        actual[key] = (last["status"], f"{last['amount']:.2f}", last["completed_on"].isoformat())

    expected = expected_records(scenario)
    assert len(expected) > 500 and {c for _, _, c in expected} == {
        "AMA_PRA_1",
        "AMA_PRA_2",
        "ANCC_CH",
        "ANCC_PHARM",
        "AANP_CH",
        "AANP_RX",
        "AAPA_1",
        "ABIM_MOC",
    }
    # Exact for every credit awarded and every expected revocation. A record the plan earns nothing for may
    # still exist as REVOKED: evidence arriving in a later batch can lower an earlier award to nothing
    # (a bare completion first, then join/leave rows of a few minutes), and REVOKED is how that is reported.
    assert {k: v for k, v in actual.items() if v[0] == "AWARDED"} == {
        k: v for k, v in expected.items() if v[0] == "AWARDED"
    }
    assert {k: v for k, v in actual.items() if k in expected and v[0] == "REVOKED"} == {
        k: v for k, v in expected.items() if v[0] == "REVOKED"
    }
    lowered_to_nothing = {k for k, v in actual.items() if k not in expected}
    assert all(actual[k][0] == "REVOKED" for k in lowered_to_nothing)
    assert dead == expected_dead_letters(scenario, batches)
    assert outbox == sum(len(v) for v in records.values())
    # PARS takes the AMA PRA credits and the MOC points (every learner with a board id here names it and consents).
    pars_types = ("AMA_PRA_1", "AMA_PRA_2", "ABIM_MOC")
    assert deliveries == sum(len(v) for v in records.values() if v[0]["credit_type"] in pars_types)
    assert total.duplicates > 0 and total.held_back > 0
