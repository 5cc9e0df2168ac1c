"""The shared HTTP source (DESIGN §9, after Singer SDK's RESTStream and Airbyte CDK's HttpStream).

A connector declares its resource (`path`), where the records sit in a response body (`records_path`), how
pages link (`pagination`) and its fixed headers; this base owns the page loop, loop detection, malformed
pages and metrics. Retries live in `connectors.http.HttpClient` and nowhere else, so counts never multiply.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from connectors.http import FailureType, FatalAPIError, HttpClient, RetriableAPIError
from connectors.sources.base import BaseSource, Problem, SourceCheckError, SourceMetrics
from connectors.sources.fields import dotted
from reconcile.vocabulary import ENCODING_INVALID, MALFORMED_PAGE

Token = str | int


class PaginationLoopError(FatalAPIError):
    """The server handed back a page token already followed in this walk: following it would never end."""


class Pagination(Protocol):
    """How one kind of API links its pages: a stateless strategy; `Paginator` walks it."""

    def request(self, path: str, params: Mapping[str, Any], token: Token | None) -> tuple[str, dict[str, Any]]:
        """The path (or URL) and query of the page `token` names (None = the first page)."""
        ...

    def next_token(self, body: Any, records: list[Any], token: Token | None) -> Token | None:
        """The token of the page after this one, or None when this one was the last."""
        ...


@dataclass(frozen=True)
class NextLink:
    """The body carries the next page's URL, relative or absolute (xAPI `more`, HATEOAS `next`)."""

    field: str

    def request(self, path: str, params: Mapping[str, Any], token: Token | None) -> tuple[str, dict[str, Any]]:
        # The link already encodes the whole query; sending the first page's parameters again would change it.
        return (str(token), {}) if token else (path, dict(params))

    def next_token(self, body: Any, records: list[Any], token: Token | None) -> Token | None:
        link = dotted(body, self.field)
        return link if isinstance(link, str) and link else None


@dataclass(frozen=True)
class NextToken:
    """The body carries an opaque token (`next_page_token`, `meta.next_cursor`) sent back as a parameter."""

    field: str
    param: str

    def request(self, path: str, params: Mapping[str, Any], token: Token | None) -> tuple[str, dict[str, Any]]:
        return path, {**params, self.param: token} if token else dict(params)

    def next_token(self, body: Any, records: list[Any], token: Token | None) -> Token | None:
        value = dotted(body, self.field)
        return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class PageNumber:
    """Numbered pages: stop at an empty page or, when the body says how many there are, at the last."""

    param: str = "page"
    total_pages_field: str | None = None
    first: int = 1

    def request(self, path: str, params: Mapping[str, Any], token: Token | None) -> tuple[str, dict[str, Any]]:
        return path, {**params, self.param: token or self.first}

    def next_token(self, body: Any, records: list[Any], token: Token | None) -> Token | None:
        current = int(token or self.first)
        if not records:
            return None
        total = dotted(body, self.total_pages_field) if self.total_pages_field else None
        if isinstance(total, int) and not isinstance(total, bool) and current >= total:
            return None
        return current + 1


class Paginator:
    """One walk over a paginated resource; refuses any token it has already followed (loop detection)."""

    def __init__(self, pagination: Pagination, start: Token | None = None) -> None:
        self.pagination = pagination
        self.current = start
        self.finished = False
        self.count = 0
        self._seen: set[Token] = {start} if start is not None else set()

    def request(self, path: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        return self.pagination.request(path, params, self.current)

    def advance(self, body: Any, records: list[Any]) -> None:
        self.count += 1
        token = self.pagination.next_token(body, records, self.current)
        if token is None:
            self.finished = True
            return
        if token in self._seen:
            raise PaginationLoopError(
                f"pagination loop: page {self.count} links to a page already read", failure=FailureType.DATA
            )
        self._seen.add(token)
        self.current = token

    def stop(self) -> None:
        self.finished = True


@dataclass(frozen=True)
class Fetched:
    """One page as read: its number in the walk, its records and the next page's token (None on the last)."""

    number: int
    next_token: Token | None
    records: list[Any]
    problem: Problem | None = None
    raw: bytes = field(default=b"", repr=False)


class HttpSource(BaseSource):
    """Base of every HTTP source. Subclasses declare; `fetch` walks; `pages` turns walks into cursored pages."""

    # Declarations (a generic connector may set them per instance from its config).
    path: str
    records_path: str
    pagination: Pagination
    page_size_param: str | None = "limit"
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, name: str, client: HttpClient, page_size: int = 100) -> None:
        super().__init__(name)
        self.client = client
        self.page_size = page_size
        self.client.headers.update(self.headers)

    def page_params(self) -> dict[str, Any]:
        return {self.page_size_param: self.page_size} if self.page_size_param else {}

    def check(self) -> None:
        """One small authenticated read of the resource (override when `path` needs ids)."""
        check_http(self.name, self.client, self.path, {self.page_size_param: 1} if self.page_size_param else {})

    def fetch(
        self, path: str, params: Mapping[str, Any], start: Token | None = None, records_path: str | None = None
    ) -> Iterator[Fetched]:
        return walk(
            self.client,
            self.pagination,
            path,
            params,
            records_path=records_path or self.records_path,
            metrics=self.metrics,
            start=start,
        )

    def pull_summary(self) -> str:
        stats = self.client.stats
        return f"; HTTP {stats.attempts} attempts, {stats.retries} retries, {stats.rate_limited} rate-limited"


def walk(
    client: HttpClient,
    pagination: Pagination,
    path: str,
    params: Mapping[str, Any],
    *,
    records_path: str,
    metrics: SourceMetrics,
    start: Token | None = None,
) -> Iterator[Fetched]:
    """Every page from `start` on. A body without a record list ends the walk with a problem page:
    nothing after it can be found, so the caller keeps its cursor before it and the next run retries."""
    paginator = Paginator(pagination, start)
    while not paginator.finished:
        url, query = paginator.request(path, params)
        response = client.request("GET", url, params=query or None)
        metrics.pages += 1
        body, records, problem = read_page(response.content, records_path, urlsplit(url).path)
        if problem is not None or records is None:
            metrics.malformed_pages += 1
            yield Fetched(paginator.count + 1, None, [], problem=problem, raw=response.content)
            return
        paginator.advance(body, records)
        metrics.records += len(records)
        yield Fetched(paginator.count, None if paginator.finished else paginator.current, records)


def listed(pages: Iterator[Fetched], what: str) -> Iterator[Any]:
    """The records of a listing that must be read whole (a webinar's registrations, a drop's files): a
    malformed page stops the pull, since what it hid would otherwise go silently missing."""
    for page in pages:
        if page.problem:
            raise FatalAPIError(f"{what}: {page.problem.reason}")
        yield from page.records


def read_page(content: bytes, records_path: str, where: str) -> tuple[Any, list[Any] | None, Problem | None]:
    """A response body's JSON and its record list, or why the page is unusable (JSON text is UTF-8, RFC 8259;
    a body nested deeper than the parser recurses is as unusable as a cut-off one)."""
    try:
        body = json.loads(content)
    except UnicodeDecodeError:
        return None, None, Problem(ENCODING_INVALID, f"response body of {where} is not UTF-8 text")
    except (ValueError, RecursionError):
        return None, None, Problem(MALFORMED_PAGE, f"response body of {where} is not JSON")
    records = dotted(body, records_path)
    if not isinstance(records, list):
        return body, None, Problem(MALFORMED_PAGE, f"response body of {where} has no list at '{records_path}'")
    return body, records, None


def check_http(name: str, client: HttpClient, path: str, params: Mapping[str, Any] | None = None) -> None:
    """One GET; failures become a SourceCheckError saying what to fix (the URL's host, never credentials)."""
    where = urlsplit(client.base_url).netloc
    try:
        client.request("GET", path, params=dict(params or {}) or None)
    except RetriableAPIError as err:
        raise SourceCheckError(f"source {name}: {where} is unreachable or failing ({err})") from None
    except FatalAPIError as err:
        if err.status in (401, 403):
            raise SourceCheckError(f"source {name}: {where} refused our credentials ({err.status})") from None
        raise SourceCheckError(f"source {name}: {where} refused the request ({err})") from None
