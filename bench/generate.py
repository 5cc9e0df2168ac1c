"""Deterministic benchmark data: xAPI statements for the sandbox LRS, from a seed.

Mix (issue 7): learners across professions, ~5 % duplicate completions, ~1 % voids, ~0.5 % bad records.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconcile.identity import npi_check_digit

VERBS = {
    "completed": "http://adlnet.gov/expapi/verbs/completed",
    "attended": "http://adlnet.gov/expapi/verbs/attended",
    "voided": "http://adlnet.gov/expapi/verbs/voided",
}
ACTIVITIES = ("ACT-001", "ACT-002", "ACT-003")
PROFESSIONS = ("MD", "MD", "MD", "DO", "RN", "NP", "PA")
EXT = "https://cmesync.org/xapi/ext/"
NAMESPACE = uuid.UUID("a3d1c5e2-7f4b-4c8e-9d6a-1b2c3d4e5f60")


@dataclass(frozen=True)
class Learner:
    number: int
    profession: str

    @property
    def npi(self) -> str:
        first_nine = f"1{self.number:08d}"
        return first_nine + str(npi_check_digit(first_nine))

    def actor(self) -> dict[str, Any]:
        return {"objectType": "Agent", "name": f"Learner {self.number}", "mbox": f"mailto:l{self.number}@example.org"}

    def extensions(self) -> dict[str, str]:
        ext = {
            f"{EXT}profession": self.profession,
            f"{EXT}given-name": f"Given{self.number}",
            f"{EXT}family-name": f"Family{self.number}",
            f"{EXT}dob-month-day": f"{self.number % 12 + 1:02d}-{self.number % 28 + 1:02d}",
        }
        if self.profession in ("MD", "DO"):
            ext[f"{EXT}npi"] = self.npi
        return ext


def statements(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` statements, stored ascending through November 2026."""
    return list(iter_statements(count, seed))


def write_statements(path: Path, count: int, seed: int = 7) -> None:
    """The statements as one JSON array, written as they are generated: 1M of them never sit in memory."""
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for n, statement in enumerate(iter_statements(count, seed)):
            out.write(",\n" if n else "\n")
            out.write(json.dumps(statement))
        out.write("\n]\n")


def iter_statements(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    learners = [Learner(n, rng.choice(PROFESSIONS)) for n in range(max(1, count // 4))]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(days=20) / max(count, 1)
    completions: list[str] = []
    emitted = 0
    index = -1
    while emitted < count:
        index += 1
        stored = start + step * index
        stamp = stored.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        statement_id = str(uuid.uuid5(NAMESPACE, f"{seed}:{index}"))
        roll = rng.random()
        if roll < 0.005:
            emitted += 1
            yield {"id": statement_id, "verb": {"id": VERBS["completed"]}, "stored": stamp, "timestamp": stamp}
            continue
        if roll < 0.015 and completions:
            target = completions.pop(rng.randrange(len(completions)))
            emitted += 1
            yield {
                "id": statement_id,
                "actor": {"objectType": "Agent", "mbox": "mailto:admin@example.org"},
                "verb": {"id": VERBS["voided"]},
                "object": {"objectType": "StatementRef", "id": target},
                "stored": stamp,
                "timestamp": stamp,
            }
            continue
        learner = rng.choice(learners)
        activity = rng.choice(ACTIVITIES)
        verb = "attended" if activity == "ACT-002" and roll < 0.4 else "completed"
        statement = {
            "id": statement_id,
            "actor": learner.actor(),
            "verb": {"id": VERBS[verb]},
            "object": {"objectType": "Activity", "id": f"https://lms.example.org/activities/{activity}"},
            "result": {"completion": True, "duration": f"PT{rng.randint(30, 150)}M"},
            "context": {"extensions": learner.extensions()},
            "timestamp": stamp,
            "stored": stamp,
        }
        emitted += 1
        yield statement
        if verb == "completed":
            completions.append(statement_id)
        if roll > 0.95 and emitted < count:
            # A duplicate completion: the same learner and activity again, a new statement id.
            emitted += 1
            yield dict(statement, id=str(uuid.uuid5(NAMESPACE, f"{seed}:{index}:dup")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description="Write benchmark xAPI statements.")
    parser.add_argument("--events", type=int, required=True, help="how many statements")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (same seed, same file)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    write_statements(args.out, args.events, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
