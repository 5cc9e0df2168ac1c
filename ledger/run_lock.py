"""One writer of the nightly kind per ledger at a time (`cmesync run`, the nightly flow, replay, dead-letter
retry, the stream's publishing and delivery passes): two at once write the same deliveries, checkpoints and
export files.

The lock is one the operating system or the database releases when its holder dies, so a SIGKILLed run never
leaves a stale lock behind:
- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated connection held for the
  run; advisory locks are per database, so each ledger database has its own.
- SQLite: `flock` on `<database>.lock` beside the database file; an in-memory database is private to its
  process and needs none.

A second writer does not wait: it is refused at once with `RunLocked`, whose message names the holder (run id,
flow, host, pid, start time). The holder writes that description into the lock file (SQLite) or the
`run_lock_holders` table (PostgreSQL, keyed by the backend pid that holds the advisory lock, so a dead holder's
row is never mistaken for the live one).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Connection, create_engine, delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.pool import NullPool

from ledger import tables as t
from ledger.bulk import upsert
from ledger.store import utcnow

log = logging.getLogger(__name__)

# The advisory lock key: "cmesync" and a 1, as a 64-bit integer (pg_locks shows it as classid/objid halves).
ADVISORY_KEY = int.from_bytes(b"cmesync\x01", "big", signed=True)
HOLDER_WAIT_S = 2.0  # how long a refused writer waits for the holder to describe itself (it does so at once)


@dataclass(frozen=True)
class Holder:
    run_id: str
    flow: str
    host: str
    pid: int
    started_at: str

    def describe(self) -> str:
        return f"run {self.run_id} ({self.flow}) on host {self.host}, pid {self.pid}, started {self.started_at}"


class RunLocked(RuntimeError):
    """Another writer holds the ledger; the message is the one line an operator needs."""

    def __init__(self, ledger: str, holder: Holder | None) -> None:
        who = holder.describe() if holder else "a writer that has not said who it is yet"
        super().__init__(f"the ledger {ledger} is in use by {who}; not started")
        self.holder = holder


@contextlib.contextmanager
def run_lock(ledger_url: str, run_id: str, flow: str) -> Iterator[Holder]:
    """Hold the ledger's run lock for the duration, or raise RunLocked at once."""
    holder = Holder(run_id, flow, socket.gethostname(), os.getpid(), utcnow().isoformat(timespec="seconds"))
    url = make_url(ledger_url)
    if url.get_backend_name() == "postgresql":
        with _advisory_lock(ledger_url, holder):
            yield holder
        return
    database = url.database
    if not database or database == ":memory:":
        yield holder
        return
    with _file_lock(Path(f"{database}.lock"), url.render_as_string(hide_password=True), holder):
        yield holder


# -- SQLite: flock beside the database file -------------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(path: Path, ledger: str, holder: Holder) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # No O_TRUNC: opening must not erase the description of a holder that is already there.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(ledger, _wait_for(lambda: _read_holder(fd))) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> Holder | None:
    raw = os.pread(fd, 4096, 0)
    try:
        return Holder(**json.loads(raw)) if raw else None
    except (ValueError, TypeError):
        return None  # written half-way this very moment


# -- PostgreSQL: a session-level advisory lock -------------------------------------------------------------------


@contextlib.contextmanager
def _advisory_lock(ledger_url: str, holder: Holder) -> Iterator[None]:
    # A dedicated engine and connection: the lock lives as long as this session, never in a pool's hands.
    engine = create_engine(ledger_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    ledger = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            if not conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}):
                raise RunLocked(ledger, _wait_for(lambda: _lock_owner(conn)))
            try:
                _describe(conn, holder)
                yield
            finally:
                _release(conn)
    finally:
        engine.dispose()


def _release(conn: Connection) -> None:
    """Unlock and clear the description. A connection the server or network cut mid-run took the lock with it
    (the server ends a dead session's locks), so failing to reach it here changes nothing and fails no run."""
    try:
        conn.execute(delete(t.run_lock_holders).where(t.run_lock_holders.c.lock_key == ADVISORY_KEY))
        conn.scalar(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    except DBAPIError as err:
        log.warning("run lock: the connection holding it was lost (%s); the server has released it", type(err).__name__)


def _describe(conn: Connection, holder: Holder) -> None:
    """The holder's row, replacing whatever a dead holder left (only the lock's holder writes here)."""
    t.run_lock_holders.create(conn, checkfirst=True)
    backend = conn.scalar(text("SELECT pg_backend_pid()"))
    row = {"lock_key": ADVISORY_KEY, "backend_pid": backend, **asdict(holder)}
    upsert(conn, t.run_lock_holders, [row], ("lock_key",))


def _lock_owner(conn: Connection) -> Holder | None:
    """The description written by the session that holds the advisory lock now."""
    owner = conn.scalar(
        text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = :high AND objid = :low AND objsubid = 1"
        ),
        {"high": (ADVISORY_KEY >> 32) & 0xFFFFFFFF, "low": ADVISORY_KEY & 0xFFFFFFFF},
    )
    if owner is None:
        return None
    h = t.run_lock_holders.c
    try:
        row = conn.execute(
            select(h.run_id, h.flow, h.host, h.pid, h.started_at).where(
                (h.lock_key == ADVISORY_KEY) & (h.backend_pid == owner)
            )
        ).first()
    except ProgrammingError:  # the table is created by the first holder, which may be doing so right now
        return None
    return Holder(row.run_id, row.flow, row.host, row.pid, row.started_at) if row else None


def _wait_for(read: Callable[[], Holder | None]) -> Holder | None:
    deadline = time.monotonic() + HOLDER_WAIT_S
    while (holder := read()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return holder
