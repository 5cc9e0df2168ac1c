"""A tiny real-HTTP server base for the sandboxes: routing, JSON, auth helpers and fault injection.

The sandboxes stand in for systems we cannot run here (DESIGN §7). They listen on loopback sockets so
that tests and the demo exercise the real client path, retries included.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Faults injected before a request is handled; rates are probabilities in [0, 1]."""

    rate_limited: float = 0.0
    retry_after_s: float = 0.05
    server_error: float = 0.0
    dropped: float = 0.0
    slow: float = 0.0
    slow_s: float = 0.5
    seed: int | None = None
    storm: int = 0  # the next `storm` requests are all answered 429 with Retry-After, before any rate applies
    down: int = 0  # the next `down` requests are all answered 503: the system is down for that long
    # While not set, every request waits for it before it is handled: a system that hangs mid-request until the
    # test lets it answer (a deterministic "slow", for ordering assertions instead of timings).
    hold: threading.Event | None = None
    injected: Counter[str] = field(default_factory=Counter)  # what was injected, for tests to prove it happened
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def draw(self) -> str | None:
        """Return the fault to inject for one request, or None."""
        with self._lock:
            fault = self._draw()
            if fault:
                self.injected[fault] += 1
            return fault

    def _draw(self) -> str | None:
        if self.down > 0:
            self.down -= 1
            return "unavailable"
        if self.storm > 0:
            self.storm -= 1
            return "rate_limited"
        roll = self._rng.random()
        for name, rate in (
            ("rate_limited", self.rate_limited),
            ("server_error", self.server_error),
            ("dropped", self.dropped),
            ("slow", self.slow),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    match: re.Match[str]

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "request body is not valid JSON") from None


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


Handler = Callable[[Request], Response]


class SandboxServer:
    """Serve `routes` on 127.0.0.1 in a background thread; subclasses register routes in __init__."""

    name = "sandbox"
    # What a registry sandbox holds, by attribute: `snapshot`/`restore` carry it from one demo night to the
    # next (deploy/embedded.py), so the second night's diff finds what the first delivered.
    state_attrs: tuple[str, ...] = ()

    def snapshot(self) -> dict[str, Any]:
        return {attr: getattr(self, attr) for attr in self.state_attrs}

    def restore(self, state: dict[str, Any]) -> None:
        """Before `start()`: hold again what `snapshot` returned."""
        for attr in self.state_attrs:
            if attr in state:
                setattr(self, attr, state[attr])

    def __init__(self, port: int = 0) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults = Faults()
        self.requests_seen = 0
        # Path → body served instead of a successful response's own (cut-off JSON, another encoding): a
        # broken proxy or server that keeps failing the same way. Auth and routing still apply first.
        self.broken_bodies: dict[str, bytes] = {}
        # Path → how many of its next requests are handled and then lose their answer (the connection drops
        # after the work is done): the client cannot know whether its request took effect.
        self.lost_responses: Counter[str] = Counter()
        self._seen_lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls: ssl.SSLContext | None = None

    def use_tls(self, certfile: str, keyfile: str) -> Self:
        """Serve HTTPS with this certificate from the next `start()` (the TLS tests of the connectors)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self._tls = context
        return self

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    @property
    def url(self) -> str:
        assert self._server is not None, f"{self.name} sandbox is not started"
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host}:{port}"

    def start(self) -> Self:
        sandbox = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, each keep-alive request costs ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Silence per-request logging: request lines can carry identifiers."""

            def _dispatch(self) -> None:
                sandbox._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _dispatch

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        self._port = self._server.server_address[1]  # a restart (stop, start) comes back on the same port
        self._server.daemon_threads = True
        if self._tls is not None:
            # The handshake runs on accept; a client refusing our certificate just fails its own connection.
            self._server.socket = self._tls.wrap_socket(self._server.socket, server_side=True)
        # A short poll interval: stop() waits for it, and tests stop a sandbox per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"sandbox-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, raw: BaseHTTPRequestHandler) -> None:
        with self._seen_lock:
            self.requests_seen += 1
        length = int(raw.headers.get("Content-Length") or 0)
        body = raw.rfile.read(length) if length else b""
        if self.faults.hold is not None:
            self.faults.hold.wait()
        fault = self.faults.draw()
        if fault == "dropped":
            raw.close_connection = True
            raw.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "slow":
            time.sleep(self.faults.slow_s)
        if fault == "rate_limited":
            self._send(raw, Response(429, {"error": "rate limited"}, {"Retry-After": str(self.faults.retry_after_s)}))
            return
        if fault == "server_error":
            self._send(raw, Response(500, {"error": "injected server error"}))
            return
        if fault == "unavailable":
            self._send(raw, Response(503, {"error": "service unavailable"}))
            return
        split = urlsplit(raw.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in raw.headers.items()}
        for method, pattern, handler in self._routes:
            match = pattern.match(split.path)
            if match and method == raw.command:
                try:
                    response = handler(Request(raw.command, split.path, params, headers, body, match))
                    if response.status == 200 and split.path in self.broken_bodies:
                        response = Response(200, self.broken_bodies[split.path])
                except HttpError as err:
                    response = Response(err.status, {"error": err.message}, err.headers)
                except Exception as err:
                    # Only the type: exception messages can quote payload values (names, NPIs).
                    log.error("%s sandbox: %s %s failed: %s", self.name, method, pattern.pattern, type(err).__name__)
                    response = Response(500, {"error": "internal sandbox error"})
                if self._lose_response(split.path):
                    raw.close_connection = True
                    raw.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(raw, response)
                return
        self._send(raw, Response(404, {"error": f"no route {raw.command} {split.path}"}))

    def _lose_response(self, path: str) -> bool:
        with self._seen_lock:
            if self.lost_responses[path] <= 0:
                return False
            self.lost_responses[path] -= 1
            return True

    @staticmethod
    def _send(raw: BaseHTTPRequestHandler, response: Response) -> None:
        if response.body is None:
            payload = b""
        elif isinstance(response.body, bytes):
            payload = response.body
        else:
            payload = json.dumps(response.body).encode()
        try:
            raw.send_response(response.status)
            raw.send_header("Content-Type", response.content_type)
            raw.send_header("Content-Length", str(len(payload)))
            for key, value in response.headers.items():
                raw.send_header(key, value)
            raw.end_headers()
            raw.wfile.write(payload)
        except ConnectionError:
            raw.close_connection = True  # the client gave up (timeout test); nothing left to tell it


def require_bearer(request: Request, token: str) -> None:
    if request.headers.get("authorization") != f"Bearer {token}":
        raise HttpError(401, "missing or wrong bearer token")


def utc_now_ms() -> str:
    """Now in UTC as ISO 8601 with milliseconds and a `Z`, the form xAPI and our registries use."""
    return format_instant(datetime.now(UTC))


def format_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """Parse ISO 8601 (a `Z` suffix allowed); a naive time is taken as UTC. ValueError if malformed."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def instant_param(request: Request, name: str) -> datetime | None:
    """An optional ISO 8601 query parameter; 400 if present but malformed."""
    text = request.params.get(name)
    if text is None or text == "":
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise HttpError(400, f"parameter {name} must be an ISO 8601 timestamp") from None


def encode_token(state: dict[str, Any]) -> str:
    """An opaque, URL-safe page token carrying the paging state, so the server keeps no cursor table."""
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """The state inside a token from `encode_token`; 400 for anything a client made up or truncated."""
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:  # bad base64, bad UTF-8 and bad JSON are all ValueErrors
        raise HttpError(400, "invalid page token") from None
    if not isinstance(state, dict):
        raise HttpError(400, "invalid page token")
    return state
