"""The ledger's URL and whether the database behind it answers: what `cmesync` checks before it starts anything
(pipeline/ops/preflight.py, pipeline/ops/check.py), kept here so that no SQLAlchemy is needed outside `ledger/`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError


class LedgerUrlInvalid(ValueError):
    """The URL names no driver SQLAlchemy can load, or options it refuses; the message says which."""


class LedgerUnreachable(Exception):
    """The database did not answer (`refused` False: down, or still starting) or refused us (`refused` True:
    unknown role or database, wrong password — configuration). `reason` is the driver's first line only."""

    def __init__(self, reason: str, refused: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


def masked(url: str) -> str:
    """The URL as it may be printed: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def backend_of(url: str) -> str | None:
    """The URL's database backend (sqlite, postgresql, …); None when it is not a database URL at all."""
    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        return None


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL, as the URL spells it; None for an in-memory database or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def wait_until_reachable(url: str, budget_s: float, waiting: Callable[[], None]) -> None:
    """Connect once, retrying a refused connection for up to `budget_s` (calling `waiting` once, before the first
    retry); LedgerUnreachable when it never answers or the server refuses us."""
    parsed = make_url(url)
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": max(1, int(budget_s / 2))}
    elif (file := sqlite_file(url)) is not None:
        # As the ledger itself does: the first run creates the file, and its directory.
        Path(file).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError) as err:
        raise LedgerUrlInvalid(str(err)) from None
    deadline = time.monotonic() + budget_s
    said = False
    try:
        while True:
            try:
                with engine.connect():
                    return
            except OperationalError as err:
                reason = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
                if "FATAL:" in str(err.orig) and "the database system is" not in str(err.orig):
                    raise LedgerUnreachable(reason, refused=True) from None
                if time.monotonic() >= deadline:
                    raise LedgerUnreachable(reason, refused=False) from None
                if not said:
                    waiting()
                    said = True
                time.sleep(0.5)
    finally:
        engine.dispose()
