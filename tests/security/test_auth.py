"""Credentials: every sandbox refuses a request without credentials or with wrong ones (401/403), and every
connector turns a refusal into one clear error naming itself, without the secret, after exactly one request
(401/403 are never retried, so a wrong secret cannot become a retry storm or lock an account)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter

from connectors.http import FatalAPIError
from connectors.registries.base import RegistryCheckError
from connectors.sources.base import SourceCheckError
from deploy.sandbox.ama_registry import AmaPraRegistry
from deploy.sandbox.base import SandboxServer
from deploy.sandbox.cebroker import CeBroker
from deploy.sandbox.file_drop import FileDrop
from deploy.sandbox.hr_endpoint import HrEndpoint
from deploy.sandbox.lrs import XapiLrs
from deploy.sandbox.provider_rest import ProviderRestApi
from deploy.sandbox.webinar import WebinarReports
from pipeline.config import RegistryConfig, SourceConfig
from pipeline.factory import build_registry, build_source
from tests.badinput.corpus import WEBINAR_ID, source_config

pytestmark = pytest.mark.integration

WRONG = "wrong-secret-4f1c9a"


@pytest.fixture
def started() -> Iterator[Callable[[SandboxServer], SandboxServer]]:
    servers: list[SandboxServer] = []

    def start(server: SandboxServer) -> SandboxServer:
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


# -- the sandboxes refuse ------------------------------------------------------------------------------------

SANDBOX_REQUESTS: dict[str, tuple[Callable[[Path], SandboxServer], str, str, dict[str, str]]] = {
    # name: (server, method, path, wrong credentials as headers)
    "lrs": (lambda _: XapiLrs(), "GET", "/xapi/statements", {"Authorization": "Basic bHJzLWRlbW86d3Jvbmc="}),
    "webinar": (
        lambda _: WebinarReports([{"id": WEBINAR_ID}]),
        "GET",
        f"/v2/past_webinars/{WEBINAR_ID}/instances",
        {"Authorization": f"Bearer {WRONG}"},
    ),
    "provider_rest": (lambda _: ProviderRestApi(), "GET", "/api/v1/completions", {"Authorization": f"Bearer {WRONG}"}),
    "file_drop": (lambda tmp: FileDrop(tmp, token="drop-token"), "GET", "/files", {"Authorization": f"Bearer {WRONG}"}),
    "ama_registry": (lambda _: AmaPraRegistry(), "GET", "/v1/holdings", {"Authorization": f"Bearer {WRONG}"}),
    "cebroker": (lambda _: CeBroker(), "POST", "/ws/roster-query", {}),
    "hr_endpoint": (
        lambda _: HrEndpoint(),
        "POST",
        "/v1/webhooks/cme-credits",
        {"X-CME-Timestamp": "1", "X-CME-Signature": "sha256=00"},
    ),
}
# CE Broker carries its credentials in the message itself.
BODIES = {
    "cebroker": {
        "missing": b'<roster_query id_parent_provider="50-1001"/>',
        "wrong": f'<roster_query id_parent_provider="50-1001" upload_key="{WRONG}"/>'.encode(),
    }
}


@pytest.mark.parametrize("name", list(SANDBOX_REQUESTS))
@pytest.mark.parametrize("credentials", ["missing", "wrong"])
def test_given_a_sandbox_when_called_without_or_with_wrong_credentials_then_it_answers_401_or_403(
    name: str, credentials: str, started: Callable[[SandboxServer], SandboxServer], tmp_path: Path
) -> None:
    build, method, path, wrong = SANDBOX_REQUESTS[name]
    server = started(build(tmp_path))
    headers = {"X-Experience-API-Version": "1.0.3", **(wrong if credentials == "wrong" else {})}

    body = BODIES.get(name, {}).get(credentials, b"{}")

    response = requests.request(method, server.url + path, headers=headers, data=body, timeout=10)

    assert response.status_code in (401, 403)
    assert server.requests_seen == 1


def test_given_the_cebroker_sandbox_when_a_valid_key_names_another_provider_then_it_answers_403(
    started: Callable[[SandboxServer], SandboxServer],
) -> None:
    server = started(CeBroker())
    message = b'<roster_query id_parent_provider="50-9999" upload_key="cebroker-demo-key"/>'

    response = requests.post(server.url + "/ws/roster-query", data=message, timeout=10)

    assert response.status_code == 403


# -- the source connectors say so, once ----------------------------------------------------------------------


def _source(kind: str, server: SandboxServer, secret: str) -> Any:
    config = source_config(kind, f"auth-{kind}", server.url, secret)
    return build_source(TypeAdapter(SourceConfig).validate_python({**config, "max_attempts": 6}))


SOURCE_SERVERS: dict[str, Callable[[Path], SandboxServer]] = {
    "xapi": lambda _: XapiLrs(),
    "webinar": lambda _: WebinarReports([{"id": WEBINAR_ID}]),
    "provider_rest": lambda _: ProviderRestApi(),
    "csv_drop": lambda tmp: FileDrop(tmp, token="drop-token"),
}
RIGHT = {
    "xapi": "lrs-demo-secret",
    "webinar": "webinar-demo-token",
    "provider_rest": "provider-demo-token",
    "csv_drop": "drop-token",
}


@pytest.mark.parametrize("kind", list(SOURCE_SERVERS))
def test_given_a_wrong_source_secret_when_checked_and_pulled_then_one_request_each_and_a_clear_auth_error(
    kind: str, started: Callable[[SandboxServer], SandboxServer], tmp_path: Path
) -> None:
    server = started(SOURCE_SERVERS[kind](tmp_path))
    source = _source(kind, server, WRONG)

    with pytest.raises(SourceCheckError) as checked:
        source.check()
    after_check = server.requests_seen
    with pytest.raises(FatalAPIError) as pulled:
        list(source.pages(None))

    message = str(checked.value)
    assert f"source auth-{kind}" in message and "refused our credentials (401)" in message
    assert WRONG not in message and RIGHT[kind] not in message
    assert pulled.value.status == 401 and pulled.value.attempts == 1
    assert WRONG not in str(pulled.value)
    assert (after_check, server.requests_seen) == (1, 2)


@pytest.mark.parametrize("kind", list(SOURCE_SERVERS))
def test_given_the_right_source_secret_when_checked_then_it_passes(
    kind: str, started: Callable[[SandboxServer], SandboxServer], tmp_path: Path
) -> None:
    server = started(SOURCE_SERVERS[kind](tmp_path))

    _source(kind, server, RIGHT[kind]).check()

    assert server.requests_seen == 1


# -- the registry connectors say so, once --------------------------------------------------------------------

REGISTRIES: dict[str, tuple[Callable[[], SandboxServer], Callable[[str, str], dict[str, Any]], str]] = {
    "ama_pra": (
        AmaPraRegistry,
        lambda url, secret: {"kind": "ama_pra", "base_url": url, "token": secret},
        "ama-demo-token",
    ),
    "cebroker": (
        CeBroker,
        lambda url, secret: {
            "kind": "cebroker",
            "base_url": url,
            "upload_key": secret,
            "parent_provider_id": "50-1001",
        },
        "cebroker-demo-key",
    ),
    "employer_hr": (
        HrEndpoint,
        lambda url, secret: {"kind": "employer_hr", "base_url": url, "hmac_secret": secret},
        "hr-demo-secret",
    ),
}


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_given_a_wrong_registry_secret_when_checked_then_one_request_and_a_clear_auth_error(
    kind: str, started: Callable[[SandboxServer], SandboxServer]
) -> None:
    build, config, right = REGISTRIES[kind]
    server = started(build())
    registry = build_registry(
        TypeAdapter(RegistryConfig).validate_python(
            {**config(server.url, WRONG), "name": f"auth-{kind}", "max_attempts": 6}
        )
    )

    with pytest.raises(RegistryCheckError) as checked:
        registry.check()

    message = str(checked.value)
    assert f"registry auth-{kind}" in message and "credentials refused (401)" in message
    assert WRONG not in message and right not in message
    assert server.requests_seen == 1
