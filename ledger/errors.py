"""The ledger failing mid-command, as the CLI reports it: one line naming the database's own complaint, so that
`flows/` needs no SQLAlchemy to tell a ledger failure from any other."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, SQLAlchemyError


class LedgerUnavailable(Exception):
    """The database refused or dropped a statement (down, restarted, locked, out of space…). The message is the
    driver's first line only: SQLAlchemy's own text carries the statement and its values, which can be PII."""

    @classmethod
    def of(cls, err: BaseException) -> LedgerUnavailable | None:
        """`err` as a LedgerUnavailable when it is a database error (SQLAlchemy's OperationalError and the rest of
        its DBAPIError family, or any SQLAlchemyError); None for anything else."""
        if isinstance(err, LedgerUnavailable):
            return err
        if isinstance(err, DBAPIError):
            lines = str(err.orig).strip().splitlines() if err.orig else []
            return cls(lines[0] if lines else type(err).__name__)
        if isinstance(err, SQLAlchemyError):
            return cls(type(err).__name__)
        return None
