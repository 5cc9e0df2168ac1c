"""HTTPS to sources and registries: a connector trusts the CA named by `verify` (or the system CAs), shows a
client certificate when configured, and an untrusted certificate is one clear fatal error naming the connector
after exactly one attempt, never a retry storm. The sandboxes serve real TLS with a certificate made here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.http import HttpClient
from connectors.registries.ama_pra import AmaRegistryConfig
from connectors.registries.base import RegistryCheckError
from connectors.sources.base import SourceCheckError
from connectors.sources.xapi import XapiSourceConfig
from deploy.sandbox.ama_registry import AmaPraRegistry
from deploy.sandbox.lrs import XapiLrs
from pipeline.config import SAMPLE_DIR
from pipeline.factory import build_registry, build_source
from tests.security.tls_certs import TlsFiles

pytestmark = pytest.mark.integration


@pytest.fixture
def https_lrs(tls_files: TlsFiles) -> Iterator[XapiLrs]:
    with XapiLrs.from_file(SAMPLE_DIR / "xapi_statements.json").use_tls(
        str(tls_files.server_cert), str(tls_files.server_key)
    ) as lrs:
        yield lrs


@pytest.fixture
def https_ama(tls_files: TlsFiles) -> Iterator[AmaPraRegistry]:
    with AmaPraRegistry().use_tls(str(tls_files.server_cert), str(tls_files.server_key)) as registry:
        yield registry


def _lrs_source(lrs: XapiLrs, verify: bool | Path) -> XapiSourceConfig:
    return XapiSourceConfig(
        name="lms-xapi", base_url=lrs.url, username=lrs.username, password=lrs.password, verify=verify
    )


def _attempts(client: HttpClient) -> tuple[int, int]:
    return client.stats.attempts, client.stats.retries


def test_given_an_https_lrs_and_its_ca_when_the_source_is_checked_then_it_passes(
    https_lrs: XapiLrs, tls_files: TlsFiles
) -> None:
    assert https_lrs.url.startswith("https://")
    source = build_source(_lrs_source(https_lrs, tls_files.ca))
    source.check()
    assert https_lrs.requests_seen == 1


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
def test_given_an_untrusted_certificate_when_the_source_is_checked_then_one_attempt_fails_with_a_tls_error(
    https_lrs: XapiLrs, tls_files: TlsFiles, trust: str
) -> None:
    source = build_source(_lrs_source(https_lrs, True if trust == "system CAs" else tls_files.other_ca))
    with pytest.raises(SourceCheckError) as caught:
        source.check()
    message = str(caught.value)
    assert message.startswith("source lms-xapi:")
    assert "TLS handshake failed: certificate verify failed" in message
    assert https_lrs.password not in message and "?" not in message  # no secret, no query string
    assert _attempts(source.client) == (1, 0)  # type: ignore[attr-defined]
    assert https_lrs.requests_seen == 0


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_given_verify_off_when_the_source_is_checked_then_the_certificate_is_not_checked(https_lrs: XapiLrs) -> None:
    build_source(_lrs_source(https_lrs, False)).check()
    assert https_lrs.requests_seen == 1


def test_given_an_https_registry_when_checked_with_and_without_its_ca_then_only_the_trusted_one_passes(
    https_ama: AmaPraRegistry, tls_files: TlsFiles
) -> None:
    trusted = AmaRegistryConfig(name="ama-pra", base_url=https_ama.url, token=https_ama.token, verify=tls_files.ca)
    build_registry(trusted).check()
    seen = https_ama.requests_seen
    assert seen >= 1
    untrusted = trusted.model_copy(update={"verify": tls_files.other_ca})
    with pytest.raises(RegistryCheckError, match=r"^registry ama-pra: .*TLS handshake failed: certificate verify"):
        build_registry(untrusted).check()
    assert https_ama.requests_seen == seen


def test_given_a_missing_ca_file_or_a_key_without_cert_when_configured_then_the_error_names_connector_and_field(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValidationError, match=r"connector lms-xapi: verify .*missing\.pem is not a readable file"):
        XapiSourceConfig(name="lms-xapi", verify=tmp_path / "missing.pem")
    key = tmp_path / "client.key"
    key.write_text("not used")
    with pytest.raises(ValidationError, match="connector ama-pra: client_key needs client_cert"):
        AmaRegistryConfig(name="ama-pra", client_key=key)
