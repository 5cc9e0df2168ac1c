"""What the stages see of Kafka, whichever client library runs underneath: messages, acknowledged ends, the
producer and consumer protocols and their errors. The backends (`kafka_python`, `confluent`) implement it;
`io` picks one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Message = tuple[bytes | None, bytes]
Ends = dict[int, int]  # partition → the offset after the last message acknowledged there
KafkaBackend = Literal["kafka-python", "confluent-kafka"]


STALL_TIMEOUT_S = 60.0


class ConsumerStalled(RuntimeError):
    """The broker stopped answering fetches while the consumer was still behind the end of the topic."""


class PublishError(RuntimeError):
    """A message was not acknowledged by the broker; nothing that depends on it may be recorded."""


class Producer(Protocol):
    """What the stages need from a producer; `make_producer` picks the backend."""

    def publish(self, topic: str, messages: Sequence[Message], timeout_s: float = 30.0) -> Ends:
        """Send and wait until the broker acknowledged every message; raise PublishError otherwise. Returns
        where the acknowledged messages ended, per partition (the ledger keeps it to notice a broker that
        later forgets them, `pipeline.stages.broker_loss`)."""

    def close(self) -> None: ...


def publish(producer: Producer, topic: str, messages: Sequence[Message], timeout_s: float = 30.0) -> Ends:
    """Send and wait for every acknowledgement, on whichever backend; where they ended, per partition."""
    return producer.publish(topic, messages, timeout_s) if messages else {}


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Consumer(Protocol):
    """What the stages need from a consumer; `make_consumer` picks the backend."""

    def batches(self, stall_timeout_s: float = STALL_TIMEOUT_S) -> Iterator[list[Consumed]]: ...

    def commit(self, batch: Sequence[Consumed]) -> None: ...

    def lag_by_partition(self) -> dict[int, int]: ...

    def close(self) -> None: ...
