"""`cmesync status`: what an operator needs at 9 am — the last runs, how far the reconciler is behind on Kafka,
what is waiting for each registry, and the oldest dead letter nobody has dealt with."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from kafka.errors import KafkaError

from ledger.queries import (
    DeadLetterRow,
    RunRow,
    delivery_backlog,
    oldest_unresolved_dead_letter,
    recent_runs,
    unresolved_dead_letter_counts,
)
from ledger.store import Ledger
from pipeline.config import Settings
from pipeline.kafka.lag import PartitionLag, consumer_lag
from pipeline.kafka.security import kafka_python_options

BROKER_ANSWER_S = 10.0


@dataclass
class Status:
    runs: list[RunRow]
    backlog: dict[str, dict[str, int]]
    unresolved: list[tuple[str, str, int]]
    oldest_unresolved: DeadLetterRow | None
    lag: list[PartitionLag] = field(default_factory=list)
    lag_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    **asdict(r),
                    "started_at": _iso(r.started_at),
                    "finished_at": _iso(r.finished_at),
                    "duration_s": r.duration_s,
                }
                for r in self.runs
            ],
            "deliveries": self.backlog,
            "unresolved_dead_letters": [
                {"stage": stage, "reason_code": code, "count": n} for stage, code, n in self.unresolved
            ],
            "oldest_unresolved_dead_letter": (
                {
                    "dead_letter_id": self.oldest_unresolved.dead_letter_id,
                    "stage": self.oldest_unresolved.stage,
                    "reason_code": self.oldest_unresolved.reason_code,
                    "source": self.oldest_unresolved.source,
                    "source_ref": self.oldest_unresolved.source_ref,
                    "first_seen": _iso(self.oldest_unresolved.first_seen),
                }
                if self.oldest_unresolved
                else None
            ),
            "consumer_lag": [{**asdict(p), "lag": p.lag} for p in self.lag],
            "consumer_lag_error": self.lag_error,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def collect_status(settings: Settings, runs: int = 5) -> Status:
    with Ledger(settings.ledger_url) as ledger:
        status = Status(
            recent_runs(ledger, runs),
            delivery_backlog(ledger),
            unresolved_dead_letter_counts(ledger),
            oldest_unresolved_dead_letter(ledger),
        )
    if not settings.kafka_bootstrap:
        status.lag_error = "no kafka_bootstrap configured"
        return status
    options = kafka_python_options(settings.kafka_security)
    answers: list[list[PartitionLag] | Exception] = []

    def measure() -> None:
        try:
            answers.append(consumer_lag(settings.kafka_bootstrap, settings.consumer_group, options=options))
        except (KafkaError, OSError, TimeoutError) as err:
            answers.append(err)

    # kafka-python keeps retrying an unreachable bootstrap for ~30 s: a daemon thread bounds the wait.
    probe = threading.Thread(target=measure, name="cmesync-status-lag", daemon=True)
    probe.start()
    probe.join(BROKER_ANSWER_S)
    if not answers:
        status.lag_error = f"broker {settings.kafka_bootstrap} did not answer within {BROKER_ANSWER_S:.0f} s"
    elif isinstance(answers[0], Exception):
        status.lag_error = f"broker {settings.kafka_bootstrap} did not answer: {type(answers[0]).__name__}"
    else:
        status.lag = answers[0]
    return status
