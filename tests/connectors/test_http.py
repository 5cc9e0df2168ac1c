"""The shared HTTP client against real sockets: what it retries, what it never retries, and what it reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
import requests

from connectors.http import (
    FailureType,
    FatalAPIError,
    HttpClient,
    RetriableAPIError,
    RetryPolicy,
    make_session,
    parse_retry_after,
)
from deploy.sandbox.base import Faults, Request, Response, SandboxServer

FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.01, jitter_s=0.001)


class ScriptedServer(SandboxServer):
    """Each route answers from a script: the first calls get the scripted failures, later ones succeed."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}
        self.failures: dict[str, list[Response]] = {}
        self._lock = threading.Lock()
        self.route("GET", r"/scripted/(?P<name>\w+)", self._scripted)
        self.route("POST", r"/scripted/(?P<name>\w+)", self._scripted)
        self.route("GET", r"/echo", self._echo)
        self.route("GET", r"/missing", lambda _: Response(404, {"error": "no such learner"}))
        self.route("GET", r"/private", lambda _: Response(401, {"error": "missing bearer token"}))
        self.route("POST", r"/bad", lambda _: Response(400, {"error": "x" * 250 + "TAIL-BEYOND-200"}))

    def script(self, name: str, *failures: Response) -> str:
        self.failures[name] = list(failures)
        return f"/scripted/{name}"

    def _scripted(self, request: Request) -> Response:
        name = request.match["name"]
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            pending = self.failures.get(name, [])
            if pending:
                return pending.pop(0)
        return Response(200, {"ok": True, "body": request.json()})

    def _echo(self, request: Request) -> Response:
        return Response(200, {"params": request.params, "headers": request.headers, "path": request.path})


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    scripted.start()
    try:
        yield scripted
    finally:
        scripted.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(server: ScriptedServer, sleeps: list[float]) -> HttpClient:
    return HttpClient(server.url, retry=FAST, timeout=(1.0, 2.0), sleep=sleeps.append)


def test_given_two_500s_when_requested_then_it_retries_and_returns_the_success(
    server: ScriptedServer, client: HttpClient, sleeps: list[float]
) -> None:
    path = server.script("flaky", Response(500, {"error": "boom"}), Response(503, {"error": "busy"}))

    assert client.get_json(path) == {"ok": True, "body": None}
    assert server.calls["flaky"] == 3
    assert (client.stats.calls, client.stats.attempts, client.stats.retries, client.stats.failures) == (1, 3, 2, 0)
    assert len(sleeps) == 2 and all(0 < s <= FAST.max_backoff_s for s in sleeps)


def test_given_a_429_with_retry_after_seconds_when_requested_then_it_waits_exactly_that_long(
    server: ScriptedServer, client: HttpClient, sleeps: list[float]
) -> None:
    path = server.script("limited", Response(429, {"error": "slow down"}, {"Retry-After": "2"}))

    assert client.get_json(path)["ok"] is True
    assert sleeps == [2.0]
    assert client.stats.rate_limited == 1


def test_given_a_429_with_an_http_date_when_requested_then_it_waits_until_then(
    server: ScriptedServer, client: HttpClient, sleeps: list[float]
) -> None:
    later = formatdate(time.time() + 30, usegmt=True)
    path = server.script("dated", Response(429, {"error": "slow down"}, {"Retry-After": later}))

    client.get_json(path)

    assert len(sleeps) == 1 and 25 < sleeps[0] <= 30


def test_given_a_huge_retry_after_when_requested_then_the_wait_is_capped(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    capped = HttpClient(server.url, retry=RetryPolicy(max_attempts=2, max_retry_after_s=5.0), sleep=sleeps.append)
    path = server.script("huge", Response(429, {"error": "slow down"}, {"Retry-After": "86400"}))

    capped.get_json(path)

    assert sleeps == [5.0]


@pytest.mark.parametrize(
    ("method", "path", "status", "failure"),
    [
        ("GET", "/missing?npi=1234567893", 404, FailureType.DATA),
        ("POST", "/bad", 400, FailureType.DATA),
        ("GET", "/private?email=zoe@example.org", 401, FailureType.CONFIG),
    ],
)
def test_given_a_4xx_when_requested_then_fatal_after_exactly_one_request(
    server: ScriptedServer,
    client: HttpClient,
    sleeps: list[float],
    method: str,
    path: str,
    status: int,
    failure: FailureType,
) -> None:
    before = server.requests_seen

    with pytest.raises(FatalAPIError) as caught:
        client.request(method, path, json={"email": "zoe@example.org"} if method == "POST" else None)

    assert server.requests_seen - before == 1
    assert sleeps == []
    assert caught.value.status == status and caught.value.attempts == 1
    assert caught.value.failure is failure
    assert str(caught.value).startswith(f"{method} {path.split('?')[0]} -> {status}: ")
    assert "1234567893" not in str(caught.value) and "zoe@" not in str(caught.value)
    assert "TAIL-BEYOND-200" not in str(caught.value)


def test_given_a_scripted_429_on_post_when_sent_then_the_body_is_sent_again_and_delivered(
    server: ScriptedServer, client: HttpClient
) -> None:
    path = server.script("deliver", Response(429, {"error": "slow down"}, {"Retry-After": "0"}))

    assert client.post_json(path, {"record_id": "r-1"}) == {"ok": True, "body": {"record_id": "r-1"}}
    assert server.calls["deliver"] == 2


def test_given_a_dropped_connection_when_requested_then_it_retries_on_a_new_connection(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.faults = Faults(dropped=1.0)

    def sleep_then_heal(seconds: float) -> None:
        sleeps.append(seconds)
        server.faults = Faults()

    healing = HttpClient(server.url, retry=FAST, sleep=sleep_then_heal)

    assert healing.get_json(server.script("dropped"))["ok"] is True
    assert len(sleeps) == 1 and server.calls["dropped"] == 1


def test_given_connections_always_dropped_when_requested_then_it_gives_up_after_max_attempts(
    server: ScriptedServer, client: HttpClient, sleeps: list[float]
) -> None:
    server.faults = Faults(dropped=1.0)
    before = server.requests_seen

    with pytest.raises(RetriableAPIError) as caught:
        client.get_json("/echo?email=zoe@example.org")

    assert server.requests_seen - before == FAST.max_attempts
    assert caught.value.status is None and caught.value.attempts == FAST.max_attempts
    assert len(sleeps) == FAST.max_attempts - 1
    assert "gave up after 4 attempts" in str(caught.value) and "zoe@" not in str(caught.value)
    assert client.stats.failures == 1


def test_given_a_persistent_500_when_requested_then_retriable_error_after_max_attempts(
    server: ScriptedServer, client: HttpClient
) -> None:
    path = server.script("down", *[Response(500, {"error": "down"})] * 10)

    with pytest.raises(RetriableAPIError) as caught:
        client.get_json(path)

    assert server.calls["down"] == FAST.max_attempts
    assert caught.value.status == 500 and caught.value.attempts == FAST.max_attempts


def test_given_seeded_random_server_errors_when_requested_then_every_injected_fault_is_retried(
    server: ScriptedServer, client: HttpClient
) -> None:
    expected_failures = 0
    probe = Faults(server_error=0.6, seed=11)
    while probe.draw() == "server_error":
        expected_failures += 1
    server.faults = Faults(server_error=0.6, seed=11)
    assert 0 < expected_failures < FAST.max_attempts, "pick a seed that fails a few times, then succeeds"

    client.get_json(server.script("seeded"))

    assert client.stats.retries == expected_failures


def test_given_a_slow_server_when_the_read_timeout_passes_then_it_is_retried_as_transient(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.faults = Faults(slow=1.0, slow_s=0.5)
    impatient = HttpClient(
        server.url,
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.001, jitter_s=0),
        timeout=(1.0, 0.05),
        sleep=sleeps.append,
    )

    with pytest.raises(RetriableAPIError, match="ReadTimeout") as caught:
        impatient.get_json("/echo")

    assert caught.value.attempts == 2


def test_given_relative_and_absolute_paths_when_requested_then_urls_join_the_base_or_stay_as_is(
    server: ScriptedServer,
) -> None:
    client = HttpClient(f"{server.url}/api/", retry=FAST)

    assert client.url("/xapi/statements?x=1") == f"{server.url}/api/xapi/statements?x=1"
    assert client.url("xapi/statements") == f"{server.url}/api/xapi/statements"
    assert client.url("http://elsewhere.example/x") == "http://elsewhere.example/x"
    assert client.get_json(f"{server.url}/echo")["path"] == "/echo"


def test_given_default_headers_and_auth_when_requested_then_they_are_sent_with_per_call_extras(
    server: ScriptedServer,
) -> None:
    client = HttpClient(server.url, headers={"X-Source": "lrs"}, auth=("svc", "secret"), retry=FAST)

    echoed = client.request("GET", "/echo", params={"since": "2024-05-01"}, headers={"X-Call": "1"}).json()

    assert echoed["params"] == {"since": "2024-05-01"}
    assert echoed["headers"]["x-source"] == "lrs" and echoed["headers"]["x-call"] == "1"
    assert echoed["headers"]["authorization"].startswith("Basic ")
    assert echoed["headers"]["user-agent"] == "cme-credit-sync"


def test_given_the_session_factory_when_called_then_urllib3_does_no_retrying_of_its_own() -> None:
    session = make_session("cmesync-test/1")

    assert session.headers["User-Agent"] == "cmesync-test/1"
    assert session.get_adapter("https://x").max_retries.total == 0
    assert isinstance(session, requests.Session)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("0.25", 0.25),
        ("-4", 0.0),
        ("soon", None),
        (formatdate(1_000_000_000 - 60, usegmt=True), 0.0),
        (formatdate(1_000_000_000 + 90, usegmt=True), 90.0),
    ],
)
def test_given_retry_after_values_when_parsed_then_seconds_or_none(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=1_000_000_000) == expected
