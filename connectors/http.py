"""The one HTTP mechanism every connector uses (DESIGN §6, §9): a session factory, typed errors, and a client
with timeouts always set and tenacity retries driven by a single status/exception → action table.

Error messages carry the status, method, URL path (never the query string) and at most 200 characters of an
error body; successful bodies never reach a message or a log line.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

ERROR_BODY_LIMIT = 200


class Action(Enum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    FAIL = "fail"


class FailureType(Enum):
    """Why a call failed, for dead-letter reason codes and operator hints."""

    TRANSIENT = "transient"
    CONFIG = "config"
    DATA = "data"


# The single place that decides what a response or a transport error means. Statuses not listed fall back by
# class: 2xx OK, 5xx RETRY, anything else FAIL (4xx are never retried, except 429).
STATUS_ACTIONS: dict[int, tuple[Action, FailureType]] = {
    401: (Action.FAIL, FailureType.CONFIG),
    403: (Action.FAIL, FailureType.CONFIG),
    405: (Action.FAIL, FailureType.CONFIG),
    429: (Action.RATE_LIMITED, FailureType.TRANSIENT),
}
EXCEPTION_ACTIONS: tuple[tuple[type[BaseException], Action], ...] = (
    # First, because it is a ConnectionError too: a certificate we do not trust stays untrusted on the next try.
    (requests.exceptions.SSLError, Action.FAIL),
    (requests.Timeout, Action.RETRY),
    (requests.ConnectionError, Action.RETRY),
    # A connection dropped mid-body surfaces as ChunkedEncodingError, which is not a ConnectionError.
    (requests.exceptions.ChunkedEncodingError, Action.RETRY),
)


def classify_status(status: int) -> tuple[Action, FailureType]:
    if status in STATUS_ACTIONS:
        return STATUS_ACTIONS[status]
    if 200 <= status < 300:
        return Action.OK, FailureType.TRANSIENT
    if 500 <= status < 600:
        return Action.RETRY, FailureType.TRANSIENT
    return Action.FAIL, FailureType.DATA


def classify_exception(exc: BaseException) -> Action:
    for kind, action in EXCEPTION_ACTIONS:
        if isinstance(exc, kind):
            return action
    return Action.FAIL


class APIError(Exception):
    """Base of the typed HTTP errors; `status` is None when no response arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        failure: FailureType = FailureType.TRANSIENT,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.failure = failure
        self.retry_after = retry_after
        self.attempts = 1


class RetriableAPIError(APIError):
    """Transient: connection trouble, timeout, 429 or 5xx. Raised to the caller once attempts run out."""


class FatalAPIError(APIError):
    """Retrying cannot help (4xx other than 429): bad request, auth, missing resource."""


@dataclass(frozen=True)
class TlsSettings:
    """How HTTPS endpoints are trusted: `verify` True (system CAs), False (no check), or a CA bundle path;
    an optional client certificate and key for servers that require mutual TLS."""

    verify: bool | str = True
    client_cert: str | None = None
    client_key: str | None = None

    def request_kwargs(self) -> dict[str, Any]:
        # Per request, not on the session: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
        kwargs: dict[str, Any] = {"verify": self.verify}
        if self.client_cert:
            kwargs["cert"] = (self.client_cert, self.client_key) if self.client_key else self.client_cert
        return kwargs


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    jitter_s: float = 0.2
    # A server asking for a longer pause than this is treated as asking for this long.
    max_retry_after_s: float = 120.0


@dataclass
class HttpStats:
    """Counters for metrics; `attempts` counts every request sent, `retries` the ones that were repeats."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class HttpObserver(Protocol):
    """Told about every attempt's answer and every retry (metrics); `status` None = no HTTP answer at all."""

    def response(self, status: int | None) -> None: ...

    def retry(self) -> None: ...


class RateLimiter:
    """Spaces request starts at least 1/`per_second` apart, across threads. Every attempt takes a slot, retries
    included, so a registry's published rate limit still holds while we retry against it."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


def make_session(user_agent: str = "cme-credit-sync") -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    # Retries live in HttpClient only; urllib3 must not add its own layer underneath.
    adapter = HTTPAdapter(max_retries=0, pool_connections=8, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None if absent/unparseable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class HttpClient:
    """HTTP calls against one base URL with default headers/auth, timeouts and the shared retry policy."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        timeout: tuple[float, float] = (3.05, 30.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rate_limit: RateLimiter | None = None,
        tls: TlsSettings | None = None,
        observer: HttpObserver | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.tls = tls or TlsSettings()
        self.session = session or make_session()
        self.headers = dict(headers or {})
        self.auth = auth
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.stats = HttpStats()
        self.rate_limit = rate_limit
        self.observer = observer
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=self.retry.initial_backoff_s, max=self.retry.max_backoff_s, jitter=self.retry.jitter_s
        )

    def url(self, path_or_url: str) -> str:
        if urlsplit(path_or_url).scheme:
            return path_or_url
        return urljoin(self.base_url, path_or_url.lstrip("/"))

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        """Send with retries; return the 2xx response or raise RetriableAPIError / FatalAPIError."""
        url = self.url(path_or_url)
        kwargs["headers"] = {**self.headers, **(kwargs.get("headers") or {})}
        kwargs.setdefault("timeout", self.timeout)
        for name, value in self.tls.request_kwargs().items():
            kwargs.setdefault(name, value)
        if self.auth is not None:
            kwargs.setdefault("auth", self.auth)
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetriableAPIError),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        self.stats.add(calls=1)
        try:
            return retrying(self._attempt, method.upper(), url, kwargs)
        except APIError as err:
            err.attempts = retrying.statistics.get("attempt_number", 1)
            if isinstance(err, RetriableAPIError):
                err.args = (f"{err.args[0]} (gave up after {err.attempts} attempts)",)
            self.stats.add(failures=1)
            raise

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return _json_or_none(self.request("GET", path, params=params))

    def post_json(self, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Any:
        return _json_or_none(self.request("POST", path, json=body, headers=dict(headers or {})))

    def _attempt(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        self.stats.add(attempts=1)
        where = f"{method} {urlsplit(url).path}"
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            if self.observer is not None:
                self.observer.response(None)
            kind = type(exc).__name__
            if classify_exception(exc) is Action.RETRY:
                raise RetriableAPIError(f"{where}: {kind}") from None
            if isinstance(exc, requests.exceptions.SSLError):
                kind = f"TLS handshake failed: {_tls_reason(exc)}"
            raise FatalAPIError(f"{where}: {kind}", failure=FailureType.CONFIG) from None
        if self.observer is not None:
            self.observer.response(response.status_code)
        action, failure = classify_status(response.status_code)
        if action is Action.OK:
            return response
        message = f"{where} -> {response.status_code}: {response.text[:ERROR_BODY_LIMIT]}"
        if action is Action.FAIL:
            raise FatalAPIError(message, status=response.status_code, failure=failure)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if action is Action.RATE_LIMITED:
            self.stats.add(rate_limited=1)
        raise RetriableAPIError(message, status=response.status_code, retry_after=retry_after)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, APIError) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry.max_retry_after_s)
        return self._backoff(state)

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.add(retries=1)
        if self.observer is not None:
            self.observer.retry()


def _tls_reason(exc: BaseException) -> str:
    """The OpenSSL reason inside a requests SSLError (e.g. "certificate verify failed: self-signed certificate
    in certificate chain"), found in its wrapped causes; the wrapper's own text quotes the URL with its query."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return str(current.reason or type(current).__name__)
        if isinstance(current, BaseException):
            pending.extend([*current.args, current.__cause__, current.__context__])
            pending.append(getattr(current, "reason", None))
    return "SSLError"


def _json_or_none(response: requests.Response) -> Any:
    return response.json() if response.content else None
