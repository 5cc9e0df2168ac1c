"""Throughput of the reconcile core alone (`reconcile/`: identity, catalog, credit rules, merge) on generated
events, batch by batch as the intake drives it, with the ledger replaced by dictionaries.

`python -m bench.reconcile --events 100000 [--batch 500] [--seed 7]`
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.config import PROFESSIONS_FILE, SAMPLE_DIR
from reconcile.catalog import Catalog, load_catalog
from reconcile.credit_rules import event_key
from reconcile.engine import Pair, reconcile_pairs, resolve_events
from reconcile.identity import IdentityIndex, npi_check_digit
from reconcile.learners import LearnerFacts, learner_profile
from reconcile.merge import CreditState
from reconcile.professions import load_professions

PROFESSIONS = ("MD", "MD", "DO", "RN", "RN", "NP", "PA")
LIVE_START = datetime(2026, 11, 18, 19, tzinfo=UTC)  # ACT-004's session, 13:00 in Chicago
SHIPPED_PROFESSIONS = load_professions(PROFESSIONS_FILE)
ENDURING = ("ACT-001", "ACT-003", "ACT-005", "ACT-007")


def npi(number: int) -> str:
    body = f"1{number:08d}"
    return body + str(npi_check_digit(body))


def learner(number: int, profession: str) -> dict[str, Any]:
    block: dict[str, Any] = {
        "email": f"l{number}@example.org",
        "given_name": f"Given{number}",
        "family_name": f"Family{number}",
        "dob_month_day": f"{number % 12 + 1:02d}-{number % 28 + 1:02d}",
        "profession": profession,
    }
    if profession in ("MD", "DO", "PA"):
        block["npi"] = npi(number)
    if profession in ("MD", "DO") and number % 2:
        block["board_id"] = f"ABIM{number}"
    if profession in ("RN", "NP"):
        block["licence"] = {"number": f"{profession}{number:06d}", "state": "TX", "profession": profession}
    return block


def generate(count: int, seed: int) -> list[dict[str, Any]]:
    """Live join/leave rows (some by email only), enduring completions, claims, ~5 % repeats, ~1 % voids."""
    rng = random.Random(seed)
    people = [(n, rng.choice(PROFESSIONS)) for n in range(max(1, count // 4))]
    events: list[dict[str, Any]] = []
    while len(events) < count:
        index = len(events)
        number, profession = rng.choice(people)
        roll = rng.random()
        base = {"event_id": f"e{index}", "source": "bench", "source_ref": f"bench:{index}", "minutes": None}
        base |= {"started_at": None, "ended_at": None, "claimed": None, "voids_event_id": None}
        if roll < 0.01 and events:
            target = rng.choice(events)
            events.append(
                {
                    **base,
                    "kind": "VOIDED",
                    "occurred_at": LIVE_START,
                    "activity_ref": None,
                    "learner": {},
                    "voids_event_id": target["event_id"],
                }
            )
        elif roll < 0.06 and events:
            events.append(rng.choice(events))
        elif roll < 0.45:
            start = LIVE_START + timedelta(minutes=rng.randint(-20, 200))
            end = start + timedelta(minutes=rng.randint(5, 120))
            who = {"email": f"l{number}@example.org"} if rng.random() < 0.3 else learner(number, profession)
            events.append(
                {
                    **base,
                    "kind": "ATTENDED",
                    "occurred_at": start,
                    "started_at": start,
                    "ended_at": end,
                    "activity_ref": "ACT-004",
                    "learner": who,
                }
            )
        elif roll < 0.95:
            when = LIVE_START + timedelta(days=rng.randint(0, 30))
            events.append(
                {
                    **base,
                    "kind": "COMPLETED",
                    "occurred_at": when,
                    "activity_ref": rng.choice(ENDURING),
                    "learner": learner(number, profession),
                }
            )
        else:
            claim = {"credit_type": "AMA_PRA_2", "amount": rng.choice((0.5, 1.0, 2.0))}
            events.append(
                {
                    **base,
                    "kind": "CLAIMED",
                    "occurred_at": LIVE_START,
                    "activity_ref": "ACT-008",
                    "learner": learner(number, profession),
                    "claimed": [claim],
                }
            )
    return events


@dataclass
class InMemoryLedger:
    """What the intake reads from and writes to the ledger, as dictionaries (not part of the measurement's
    subject, but cheap: every lookup is a dict access)."""

    identities: IdentityIndex = field(default_factory=IdentityIndex)
    seen: set[str] = field(default_factory=set)
    pair_of: dict[str, Pair] = field(default_factory=dict)
    evidence: dict[Pair, list[Mapping[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    voids_of: set[str] = field(default_factory=set)
    pairs_of_learner: dict[str, set[Pair]] = field(default_factory=lambda: defaultdict(set))
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: dict[str, CreditState] = field(default_factory=dict)
    decided: list[tuple[Any, ...]] = field(default_factory=list)  # for the digest: tuples the collector skips
    rejected: Counter[str] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)

    def reconcile(self, batch: Sequence[Mapping[str, Any]], catalog: Catalog) -> None:
        fresh = {event_key(e): e for e in batch if event_key(e) not in self.seen}
        resolved, rejections = resolve_events(list(fresh.values()), catalog, self.identities, self.pair_of)
        self.rejected.update(r.reason_code for r in rejections)
        touched: set[Pair] = set()
        for r in resolved:
            self.seen.add(r.key)
            if r.event["kind"] == "VOIDED":
                self.voids_of.add(f"{r.event['source']}:{r.event['voids_event_id']}")
            if r.learner_id and r.activity_id:
                pair = (r.learner_id, r.activity_id)
                self.pair_of[r.key] = pair
                self.evidence[pair].append(r.event)
                self.pairs_of_learner[r.learner_id].add(pair)
                touched.add(pair)
        learners = {lid for lid, _ in touched}
        before = {lid: LearnerFacts.of(self.profiles.get(lid)) for lid in learners}
        for r in resolved:
            if r.learner_id and r.event["kind"] != "VOIDED":
                self.profiles[r.learner_id] = learner_profile(
                    self.profiles.get(r.learner_id), r.event["learner"], r.event["occurred_at"]
                )
        facts = {lid: LearnerFacts.of(self.profiles.get(lid)) for lid in learners}
        for lid in learners:
            if facts[lid] != before[lid]:
                touched |= self.pairs_of_learner[lid]
        outcome = reconcile_pairs(
            {p: self.evidence[p] for p in touched},
            self.voids_of,
            facts,
            catalog,
            self.current,
            professions=SHIPPED_PROFESSIONS,
        )
        for state in outcome.versions:
            self.current[state.record_id] = state
        self.decided += [
            (s.record_id, s.version, str(s.status), str(s.amount), s.completed_on, s.evidence) for s in outcome.versions
        ]
        self.held.update(h.reason_code for h in outcome.held)

    def digest(self) -> str:
        """What the core decided, as one hash: a speed-up that changes it changed a decision."""
        sha = hashlib.sha256()
        for decided in sorted(self.decided):  # (record id, version) first, unique
            sha.update(repr(decided).encode())
        for counts in (self.rejected, self.held):
            sha.update(repr(sorted((str(code), n) for code, n in counts.items())).encode())
        return sha.hexdigest()


def batches(events: Sequence[Mapping[str, Any]], size: int) -> Iterator[Sequence[Mapping[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    catalog = load_catalog(SAMPLE_DIR / "catalog.json")
    events = generate(args.events, args.seed)
    # The generated input stands for the topic, which the stage never holds: out of the collector's sight, as
    # the stage's consumed batches are, so that its full collections do not walk the whole input each time.
    gc.freeze()
    ledger = InMemoryLedger()
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches(events, args.batch):
        ledger.reconcile(batch, catalog)
    seconds = time.perf_counter() - started
    # The CPU time too: on a shared machine the wall clock also counts the other processes' turns.
    cpu_seconds = time.process_time() - cpu_started
    print(
        f"reconcile/ alone: {len(events):,} events in batches of {args.batch} in {seconds:.2f} s "
        f"= {len(events) / seconds:,.0f} events/s "
        f"({len(ledger.decided):,} credit versions, {ledger.rejected.total():,} rejected, "
        f"{ledger.held.total():,} held, {len(ledger.profiles):,} learners)"
    )
    per_event = cpu_seconds / len(events) * 1e6
    print(f"CPU {cpu_seconds:.2f} s = {len(events) / cpu_seconds:,.0f} events/s, {per_event:.1f} µs/event")
    print(f"decisions sha256 {ledger.digest()}")


if __name__ == "__main__":
    main()
