"""The ledger's connection patience on PostgreSQL (`ledger/store.py`): a server that refuses connections for a
moment is waited for; one that answers "no such database" is not."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ledger.store import Ledger
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.faults.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SERVER = make_url(POSTGRES_ADMIN_DSN).set(drivername="postgresql+psycopg")


def test_given_the_database_refusing_connections_for_a_moment_when_the_ledger_connects_then_it_waits_and_connects() -> (
    None
):
    with TcpProxy((SERVER.host or "127.0.0.1", SERVER.port or 5432)) as proxy:
        proxy.stop()
        reopen = threading.Timer(1.5, proxy.start)
        started = time.monotonic()
        reopen.start()
        try:
            url = SERVER.set(port=proxy.port).render_as_string(hide_password=False)
            with Ledger(url) as ledger, ledger.engine.connect() as conn:
                assert conn.scalar(text("SELECT 1")) == 1
        finally:
            reopen.join()
        assert time.monotonic() - started >= 1.5
        assert proxy.accepted == 1


def test_given_a_database_that_does_not_exist_when_the_ledger_connects_then_it_fails_at_once() -> None:
    with Ledger(SERVER.set(database="cmesync_no_such_database").render_as_string(hide_password=False)) as ledger:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="does not exist"):
            ledger.engine.connect()
    assert time.monotonic() - started < 5
