"""Which broker findings an embedded run (its broker started empty on purpose) may pass over: only those where
the ledger had reconciled everything the broker forgot. Events lost before they were reconciled stay a failure."""

from __future__ import annotations

import pytest

from pipeline.kafka.topics import ATTENDANCE_TOPIC, CREDITS_TOPIC
from pipeline.stages.broker_loss import (
    CREDIT_STREAM_BEHIND,
    GROUP_OFFSETS_GONE,
    LOG_START_PAST_LEDGER,
    TOPIC_BEHIND,
    Assessment,
    Loss,
)

CASES = [
    # id, topic, reason, lost_from (reconciled end), lost_to, expected unreconciled_lost
    ("all-reconciled-topic-behind", ATTENDANCE_TOPIC, TOPIC_BEHIND, 59, 59, False),
    ("group-offsets-gone", ATTENDANCE_TOPIC, GROUP_OFFSETS_GONE, 59, 59, False),
    ("credit-stream-behind-only", CREDITS_TOPIC, CREDIT_STREAM_BEHIND, 0, 29, False),
    ("killed-mid-reconcile", ATTENDANCE_TOPIC, TOPIC_BEHIND, 25, 59, True),
    ("log-start-past-ledger", ATTENDANCE_TOPIC, LOG_START_PAST_LEDGER, 10, 40, True),
]


@pytest.mark.parametrize(
    ("topic", "reason", "lost_from", "lost_to", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_given_a_finding_when_asked_whether_unreconciled_events_were_lost_then_only_a_real_window_counts(
    topic: str, reason: str, lost_from: int, lost_to: int, expected: bool
) -> None:
    assessment = Assessment([Loss(topic, 0, reason, lost_from, lost_to, 0, 0)])

    assert assessment.lost
    assert assessment.unreconciled_lost is expected
