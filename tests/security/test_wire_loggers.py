"""kafka-python's wire loggers: never at DEBUG (their DEBUG lines carry message values and SASL bytes), never
louder than the root logger (a default run is not buried under connection notices)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pipeline.kafka.security import WIRE_LOGGERS, kafka_python_options


@pytest.fixture
def root_level() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    before = root.level
    yield root
    root.setLevel(before)
    kafka_python_options(None)


@pytest.mark.parametrize(
    ("root", "wire"),
    [(logging.DEBUG, logging.INFO), (logging.INFO, logging.INFO), (logging.WARNING, logging.WARNING)],
)
def test_given_a_root_level_when_a_kafka_client_is_configured_then_the_wire_loggers_are_held_at_info_or_above(
    root_level: logging.Logger, root: int, wire: int
) -> None:
    root_level.setLevel(root)

    kafka_python_options(None)

    assert [logging.getLogger(name).getEffectiveLevel() for name in WIRE_LOGGERS] == [wire] * len(WIRE_LOGGERS)
    assert not logging.getLogger("kafka.producer.kafka").isEnabledFor(logging.DEBUG)
