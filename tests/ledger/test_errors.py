"""LedgerUnavailable.of (ledger/errors.py): the database's real errors become one line naming its complaint,
never the statement or its values; anything else is not a ledger failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from ledger import tables as t
from ledger.errors import LedgerUnavailable
from ledger.store import Ledger

pytestmark = pytest.mark.dialect

NPI = "1639204852"


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
        yield ledger


def raised(ledger: Ledger, statement: str) -> SQLAlchemyError:
    with pytest.raises(SQLAlchemyError) as caught, ledger.engine.connect() as conn:
        conn.execute(text(statement))
    return caught.value


def test_given_a_statement_the_database_refuses_when_mapped_then_one_line_of_the_drivers_message(
    ledger: Ledger,
) -> None:
    err = raised(ledger, "SELECT * FROM no_such_table")

    unavailable = LedgerUnavailable.of(err)

    assert isinstance(unavailable, LedgerUnavailable)
    assert "no_such_table" in str(unavailable) and "\n" not in str(unavailable)
    assert "SELECT" not in str(unavailable)  # SQLAlchemy's own text quotes the statement


def test_given_a_duplicate_learner_key_when_mapped_then_the_value_is_not_in_the_message(ledger: Ledger) -> None:
    row = {"kind": "npi", "value": NPI, "learner_id": "learner-1"}
    with ledger.transaction() as conn:
        conn.execute(insert(t.learner_ids).values(row))
    with pytest.raises(SQLAlchemyError) as caught, ledger.transaction() as conn:
        conn.execute(insert(t.learner_ids).values(row))

    unavailable = LedgerUnavailable.of(caught.value)

    assert unavailable is not None and str(unavailable)
    assert NPI not in str(unavailable)  # PostgreSQL's DETAIL line and SQLAlchemy's parameters name it


@pytest.mark.integration  # PostgreSQL, without the ledger_url fixture that would say so
def test_given_a_database_that_does_not_exist_when_connecting_then_the_error_maps_to_the_servers_refusal() -> None:
    ledger = Ledger("postgresql+psycopg://postgres@127.0.0.1:5432/cmesync_no_such_database")
    with pytest.raises(SQLAlchemyError) as caught, ledger, ledger.engine.connect():
        pass

    unavailable = LedgerUnavailable.of(caught.value)

    assert unavailable is not None and "cmesync_no_such_database" in str(unavailable)
    assert "\n" not in str(unavailable)


def test_given_errors_that_are_not_the_databases_when_mapped_then_none_or_the_type_name() -> None:
    assert LedgerUnavailable.of(ValueError("a value")) is None
    assert LedgerUnavailable.of(KeyError("npi")) is None
    assert str(LedgerUnavailable.of(NoSuchTableError("credits"))) == "NoSuchTableError"
    already = LedgerUnavailable("down")
    assert LedgerUnavailable.of(already) is already
