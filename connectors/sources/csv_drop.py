"""Conference sign-in / badge-scan CSV drops: a directory, or an HTTP listing, of CSV files.

Column names differ per provider: each source instance maps our fields to its provider's header names.
Files get re-sent under new names, so a file is known by the SHA-256 of its bytes, and the cursor is the set
of checksums read to the end (plus the line reached in the file being read): the drop has no order to put
a watermark on. The same content under any name is skipped; a corrected file (new bytes) is read, and
its unchanged rows carry the same content-derived event ids, so they dedupe downstream.

Every row is traceable as `file:line`. Text is UTF-8 (a BOM is dropped); cells that are not UTF-8 are
read in the fallback encoding (Latin-1 by default), cell by cell, so one Latin-1 row among UTF-8 ones is
read right. A malformed row is a dead letter; a file that cannot be read as text or lacks a mapped column
is one dead letter for the whole file, and is not read again until its content changes.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pydantic import Field, model_validator

from connectors.config import Wiring, source_kind
from connectors.http import HttpClient
from connectors.sources.base import BaseSource, Event, Page, Problem, RawRecord, SourceCheckError, SourceMetrics
from connectors.sources.cursor import Cursor
from connectors.sources.http_source import NextToken, check_http, listed, walk
from connectors.sources.mapping import FieldMapping, MappedSourceConfig
from connectors.sources.watermark import Ids
from reconcile.vocabulary import ENCODING_INVALID, FIELD_TOO_LARGE, MALFORMED_ROW, UNMAPPED_HEADER

# No sign-in row comes near this; a longer one is a broken export (or an attack), dead-lettered unparsed.
MAX_ROW_CHARS = 64 * 1024
# A quoted cell may span lines (a notes column); a quote still open after this many lines was never closed.
MAX_ROW_LINES = 20
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_UNDECODED = re.compile(r"[\udc80-\udcff]")
_C1_CONTROL = re.compile(r"[\x80-\x9f]")


@dataclass(frozen=True)
class DropFile:
    name: str
    read: Callable[[], bytes]
    checksum: str | None = None  # when the listing states it, a known file is not even downloaded


class DropLocation(Protocol):
    def check(self, source: str) -> None: ...

    def files(self) -> list[DropFile]: ...


@dataclass(frozen=True)
class DirectoryDrop:
    directory: Path
    pattern: str = "*.csv"

    def check(self, source: str) -> None:
        if not self.directory.is_dir():
            raise SourceCheckError(f"source {source}: drop directory {self.directory} does not exist")
        try:
            next(self.directory.iterdir(), None)
        except OSError as err:
            raise SourceCheckError(f"source {source}: drop directory {self.directory} is not readable") from err

    def files(self) -> list[DropFile]:
        paths = [p for p in self.directory.iterdir() if p.is_file() and _matches(p.name, self.pattern)]
        return [DropFile(p.name, p.read_bytes) for p in sorted(paths)]


@dataclass
class HttpDrop:
    """A JSON listing at `GET {base}/files`: `{"files": [{"name", "url", "sha256"?}], "next_page_token"}`."""

    client: HttpClient
    pattern: str = "*.csv"
    listing_path: str = "/files"
    metrics: SourceMetrics = field(default_factory=SourceMetrics)
    pagination = NextToken(field="next_page_token", param="page_token")

    def check(self, source: str) -> None:
        check_http(source, self.client, self.listing_path)

    def files(self) -> list[DropFile]:
        files: list[DropFile] = []
        pages = walk(self.client, self.pagination, self.listing_path, {}, records_path="files", metrics=self.metrics)
        for entry in listed(pages, "drop listing"):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            if not _matches(entry["name"], self.pattern):
                continue
            url = entry.get("url") if isinstance(entry.get("url"), str) else f"{self.listing_path}/{entry['name']}"
            checksum = entry.get("sha256") if isinstance(entry.get("sha256"), str) else None
            files.append(DropFile(entry["name"], self._reader(url), checksum))
        return sorted(files, key=lambda d: d.name)

    def _reader(self, url: str) -> Callable[[], bytes]:
        return lambda: self.client.request("GET", url).content


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(name.lower(), pattern.lower())


class CsvCursor(Cursor):
    """Checksums of files read to the end, and (checksum, last line emitted) of the file being read."""

    done: Ids = frozenset()
    file: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Row:
    line: int
    cells: list[str] | None  # None: the row could not be split into cells
    text: str
    problem: Problem | None = None


class CsvDropSource(BaseSource):
    """Rows of every new file in a drop; one file's rows per page (at most `page_size` of them)."""

    kind = "csv_drop"

    def __init__(
        self,
        name: str,
        location: DropLocation,
        mapping: FieldMapping,
        *,
        page_size: int = 500,
        fallback_encoding: str | None = "latin-1",
        delimiter: str = ",",
    ) -> None:
        super().__init__(name)
        self.location = location
        self.mapping = mapping
        self.page_size = page_size
        self.fallback_encoding = codecs.lookup(fallback_encoding).name if fallback_encoding else None
        self.delimiter = delimiter
        self.skipped_files = 0

    def check(self) -> None:
        self.location.check(self.name)

    def read(self, cursor: str | None) -> Iterator[Page]:
        state = CsvCursor.load(cursor)
        self.skipped_files = 0
        for drop in self.location.files():
            if drop.checksum and drop.checksum in state.done:
                self.skipped_files += 1
                continue
            content = drop.read()
            checksum = hashlib.sha256(content).hexdigest()
            if checksum in state.done:
                self.skipped_files += 1  # the same content re-sent, under this or another name
                continue
            start_line = state.line if state.file == checksum else 0
            for records, last_line, finished in self._file_pages(drop.name, content, start_line):
                done = state.done | {checksum} if finished else state.done
                state = CsvCursor(done=done) if finished else CsvCursor(done=done, file=checksum, line=last_line)
                self.metrics.pages += 1
                self.metrics.records += len(records)
                yield Page(records, state.dump())

    def pull_summary(self) -> str:
        return f", {self.skipped_files} files already read"

    def _file_pages(self, name: str, content: bytes, after_line: int) -> Iterator[tuple[list[RawRecord], int, bool]]:
        """(records, last line, file finished) per page of one file, rows after `after_line` only."""
        if b"\x00" in content:
            problem = Problem(ENCODING_INVALID, "file is not UTF-8 or single-byte text (NUL bytes: UTF-16?)")
            yield [RawRecord(f"{name}:1", content, problem)], 1, True
            return
        rows = self._rows(content.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="surrogateescape"))
        header = next(rows, None)
        if header is None:
            yield [], 0, True
            return
        columns, missing = self._columns(header)
        if missing:
            problem = Problem(UNMAPPED_HEADER, f"header lacks the mapped columns {', '.join(sorted(missing))}")
            yield [RawRecord(f"{name}:{header.line}", content, problem)], 1, True
            return
        page: list[RawRecord] = []
        last = header.line
        for row in rows:
            last = row.line
            if row.line <= after_line or (row.cells is not None and not any(c.strip() for c in row.cells)):
                continue
            page.append(self._record(name, row, columns, len(header.cells or ())))
            if len(page) == self.page_size:
                yield page, last, False
                page = []
        yield page, last, True

    def _columns(self, header: Row) -> tuple[dict[str, int], set[str]]:
        names = [self._decode(cell) or "" for cell in header.cells or ()]
        position = {cell.strip().lower(): i for i, cell in enumerate(names)}
        columns = {key: position.get(column.strip().lower()) for key, column in self.mapping.fields.items()}
        missing = {self.mapping.fields[key] for key, index in columns.items() if index is None}
        return {key: index for key, index in columns.items() if index is not None}, missing

    def _record(self, name: str, row: Row, columns: Mapping[str, int], width: int) -> RawRecord:
        where = f"{name}:{row.line}"
        raw = row.text.encode("utf-8", "surrogateescape")
        if row.problem:
            return RawRecord(where, raw, row.problem)
        cells = row.cells or []
        if len(cells) != width:
            return RawRecord(where, raw, Problem(MALFORMED_ROW, f"row has {len(cells)} cells, the header {width}"))
        values = {key: self._decode(cells[index]) for key, index in columns.items()}
        undecodable = sorted(self.mapping.fields[key] for key, value in values.items() if value is None)
        if undecodable:
            encodings = " or ".join(filter(None, ("UTF-8", self.fallback_encoding)))
            reason = f"cells {', '.join(undecodable)} are not text in {encodings}"
            return RawRecord(where, raw, Problem(ENCODING_INVALID, reason))
        return RawRecord(where, values)

    def _decode(self, cell: str) -> str | None:
        if not _UNDECODED.search(cell):
            return cell
        if self.fallback_encoding is None:
            return None
        try:
            decoded = cell.encode("utf-8", "surrogateescape").decode(self.fallback_encoding)
        except UnicodeDecodeError:
            return None
        # Latin-1 maps every byte, 0x80-0x9F to C1 controls: those bytes were some other encoding (cp1252's
        # curly quotes), so the cell is not text in the fallback either.
        return None if _C1_CONTROL.search(decoded) else decoded

    def _rows(self, text: str) -> Iterator[Row]:
        """Logical rows with their first physical line: a quoted cell may span lines, but a quote left open
        swallows only its own line, never the rest of the file."""
        lines = _LINE.findall(text)
        index = 0
        while index < len(lines):
            line_number = index + 1
            end = index + 1
            if lines[index].count('"') % 2:
                while end < len(lines) and end - index < MAX_ROW_LINES and "".join(lines[index:end]).count('"') % 2:
                    end += 1
            chunk = "".join(lines[index:end])
            cells = self._split(chunk) if chunk.count('"') % 2 == 0 else None
            if cells is None and end > index + 1:
                end, chunk = index + 1, lines[index]
                cells = self._split(chunk)
            index = end
            yield self._row(line_number, chunk, cells)

    def _row(self, line: int, chunk: str, cells: list[str] | None) -> Row:
        text = chunk.rstrip("\r\n")
        if len(chunk) > MAX_ROW_CHARS:
            return Row(line, None, text, Problem(FIELD_TOO_LARGE, f"row is longer than {MAX_ROW_CHARS} characters"))
        if cells is None:
            return Row(line, None, text, Problem(MALFORMED_ROW, "row has an unbalanced quote"))
        return Row(line, cells, text)

    def _split(self, chunk: str) -> list[str] | None:
        if len(chunk) > MAX_ROW_CHARS:
            return None
        try:
            parsed = list(csv.reader(io.StringIO(chunk, newline=""), delimiter=self.delimiter, strict=True))
        except csv.Error:
            return None
        return parsed[0] if len(parsed) == 1 else None

    def parse(self, record: RawRecord) -> Iterable[Event]:
        return [self.mapping.event(self, record, record.data)]


@source_kind
class CsvDropSourceConfig(MappedSourceConfig):
    kind: Literal["csv_drop"] = "csv_drop"
    directory: Path | None = Field(None, description="A local drop directory (else base_url: an HTTP listing).")
    pattern: str = "*.csv"
    page_size: int = Field(500, ge=1, le=10_000, description="Rows per page.")
    fallback_encoding: str | None = Field("latin-1", description="For cells that are not UTF-8; none = refuse.")
    delimiter: str = Field(",", min_length=1, max_length=1)

    @model_validator(mode="after")
    def _one_location(self) -> CsvDropSourceConfig:
        if self.directory is not None:
            if self.base_url:
                raise ValueError(f"source {self.name}: set `directory` or `base_url`, not both")
            # A file: URL, so "no endpoint" keeps meaning "embedded" for every connector kind.
            self.base_url = self.directory.resolve().as_uri()
            self.directory = None
        if self.fallback_encoding:
            try:
                codecs.lookup(self.fallback_encoding)
            except LookupError:
                raise ValueError(f"source {self.name}: unknown encoding {self.fallback_encoding!r}") from None
        return self

    def optional_bearer(self) -> str | None:
        return self.bearer() if self.token or self.token_env else None

    def build(self, wiring: Wiring) -> CsvDropSource:
        location: DropLocation = (
            DirectoryDrop(Path(url2pathname(urlsplit(self.base_url).path)), self.pattern)
            if self.base_url.startswith("file:")
            else HttpDrop(self.client(self.optional_bearer()), self.pattern)
        )
        return CsvDropSource(
            self.name,
            location,
            self.mapping(),
            page_size=self.page_size,
            fallback_encoding=self.fallback_encoding,
            delimiter=self.delimiter,
        )
