"""`[kafka_security]` (TLS and SASL) as each Kafka client library spells it: keyword arguments for kafka-python's
producer, consumer and admin clients, and librdkafka configuration keys for the confluent-kafka backend. Every
Kafka client the pipeline builds takes its connection settings from here.

The SASL password is a `MaskedSecret`: a str to the client libraries, `'***'` in any repr, because kafka-python
logs an admin client's whole configuration at DEBUG.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import KafkaSecurityConfig

# kafka-python's DEBUG lines print message values (learner NPIs, emails, names: `kafka.producer.kafka` logs every
# send, the sender and the wire loggers whole requests) and SASL authentication bytes (the password).
WIRE_LOGGERS = ("kafka.producer", "kafka.protocol", "kafka.net.connection")


def hold_wire_loggers() -> None:
    """The wire loggers at INFO or above whatever the root level, so their DEBUG lines never print; and no
    louder than the root, so a run at the default level is not buried under connection notices. Connection,
    metadata and consumer-group DEBUG lines stay available. Called again whenever a client is configured,
    because the root level is set when Prefect configures logging, after this module is imported."""
    level = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(level)


hold_wire_loggers()


class MaskedSecret(str):
    """A secret that prints as `'***'` in reprs (a dict of client settings in a log line or a traceback)."""

    def __repr__(self) -> str:
        return "'***'"


def kafka_python_options(security: KafkaSecurityConfig | None) -> dict[str, Any]:
    """Keyword arguments for KafkaProducer / KafkaConsumer / KafkaAdminClient."""
    hold_wire_loggers()
    if security is None or security.security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": security.security_protocol}
    if security.uses_tls:
        options["ssl_check_hostname"] = security.ssl_check_hostname
        # No cafile: kafka-python's default SSL context, which trusts the system CAs.
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(security, name)
            if path is not None:
                options[name] = str(path)
    if security.uses_sasl:
        # kafka-python takes the SCRAM credentials in the sasl_plain_* arguments too.
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = MaskedSecret(security.sasl_password())
    return options


def librdkafka_options(security: KafkaSecurityConfig | None) -> dict[str, Any]:
    """librdkafka configuration keys for confluent_kafka.Producer / Consumer."""
    if security is None or security.security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security.protocol": security.security_protocol}
    if security.uses_tls:
        # "probe" finds the system CA bundle; librdkafka's wheels otherwise trust nothing.
        options["ssl.ca.location"] = str(security.ssl_cafile) if security.ssl_cafile else "probe"
        options["ssl.endpoint.identification.algorithm"] = "https" if security.ssl_check_hostname else "none"
        if security.ssl_certfile is not None and security.ssl_keyfile is not None:
            options["ssl.certificate.location"] = str(security.ssl_certfile)
            options["ssl.key.location"] = str(security.ssl_keyfile)
    if security.uses_sasl:
        options["sasl.mechanisms"] = security.sasl_mechanism
        options["sasl.username"] = security.sasl_username
        options["sasl.password"] = MaskedSecret(security.sasl_password())
    return options
