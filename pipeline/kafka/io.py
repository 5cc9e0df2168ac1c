"""Kafka clients as the configuration asks for them: `kafka_backend` picks kafka-python or confluent-kafka,
`kafka_security` their TLS/SASL options."""

from __future__ import annotations

from pipeline.config import KafkaSecurityConfig
from pipeline.kafka.confluent import ConfluentBatchConsumer, ConfluentProducer
from pipeline.kafka.interface import Consumer, KafkaBackend, Producer
from pipeline.kafka.kafka_python import BatchConsumer, KafkaPythonProducer
from pipeline.kafka.security import kafka_python_options, librdkafka_options


def make_producer(
    bootstrap: str,
    client_id: str = "cmesync",
    backend: KafkaBackend = "kafka-python",
    security: KafkaSecurityConfig | None = None,
) -> Producer:
    if backend == "confluent-kafka":
        return ConfluentProducer(bootstrap, client_id, librdkafka_options(security))
    return KafkaPythonProducer(bootstrap, client_id, kafka_python_options(security))


def make_consumer(
    bootstrap: str,
    topic: str,
    group_id: str,
    max_records: int = 500,
    join_group: bool = False,
    backend: KafkaBackend = "kafka-python",
    security: KafkaSecurityConfig | None = None,
) -> Consumer:
    if backend == "confluent-kafka":
        return ConfluentBatchConsumer(bootstrap, topic, group_id, max_records, join_group, librdkafka_options(security))
    return BatchConsumer(bootstrap, topic, group_id, max_records, join_group, kafka_python_options(security))
