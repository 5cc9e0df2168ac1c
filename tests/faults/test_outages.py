"""Parts that go away for a while and come back, mid-run: the broker paused (SIGSTOP) for 15 s, the ledger
database refusing connections (PostgreSQL) or locked by another writer (SQLite) for a few seconds. The stated
behaviour: the run waits them out and finishes (exit 0), and its final state equals the clean run's."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from deploy.sandbox.base import Faults
from ledger import tables as t
from tests.faults.conftest import Outcome, World
from tests.faults.tcp_proxy import TcpProxy
from tests.ops.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

BROKER_PAUSE_S = 15.0
LEDGER_OUTAGE_S = 4.0


def slow_pull(world: World) -> None:
    """Every LRS page takes 0.4 s, so the run spends its pull waiting on HTTP: an outage started right after a
    request arrives lands between two ledger or broker calls, not across one in flight."""
    world.stack.lrs.faults = Faults(slow=1.0, slow_s=0.4)


def pulling(world: World, pages: int = 4) -> Callable[[], bool]:
    return lambda: world.stack.lrs.requests_seen >= pages


def events_in_ledger(world: World) -> int:
    try:
        with world.ledger.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.events)) or 0)
    except SQLAlchemyError:  # the run has not created the ledger's tables yet
        return 0


@contextmanager
def paused(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_given_the_broker_paused_15s_while_pages_are_produced_when_resumed_then_the_run_finishes_as_the_clean_run(
    world: World, reference: Outcome
) -> None:
    slow_pull(world)
    run = world.start()
    wait_for(pulling(world), "the pull to be under way")
    served = world.stack.lrs.requests_seen
    with paused(world.broker.pid):
        time.sleep(BROKER_PAUSE_S)
        assert run.poll() is None, "the run gave up while the broker was paused"
        stalled_at = world.stack.lrs.requests_seen
    result = world.finish(run)

    assert stalled_at <= served + 2, "the pull went on past an unacknowledged page"
    assert result.returncode == 0, result.stderr[-3000:]
    assert world.settle() == reference


def test_given_the_broker_paused_15s_while_batches_are_reconciled_when_resumed_then_the_run_finishes_as_the_clean_run(
    world: World, reference: Outcome
) -> None:
    run = world.start()
    wait_for(lambda: events_in_ledger(world) > 0, "the first reconciled batch", every_s=0.02)
    with paused(world.broker.pid):
        reconciled_before_the_pause = events_in_ledger(world)
        time.sleep(BROKER_PAUSE_S)
    result = world.finish(run)

    assert result.returncode == 0, result.stderr[-3000:]
    assert reconciled_before_the_pause < events_in_ledger(world), "the pause came after the reconcile stage"
    assert world.settle() == reference


@pytest.fixture
def proxied(world: World) -> Iterator[TcpProxy | None]:
    """For PostgreSQL, the run reaches the ledger through a proxy the test can take down; SQLite: None."""
    url = make_url(world.ledger_url)
    if url.get_backend_name() != "postgresql":
        yield None
        return
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        world.write_config(ledger_url=url.set(port=proxy.port).render_as_string(hide_password=False))
        yield proxy


@pytest.mark.dialect
def test_given_the_ledger_unavailable_for_seconds_mid_run_when_it_comes_back_then_the_run_finishes_as_the_clean_run(
    world: World, proxied: TcpProxy | None, reference: Outcome
) -> None:
    slow_pull(world)
    run = world.start()
    wait_for(pulling(world), "the pull to be under way")
    if proxied is not None:
        proxied.outage(LEDGER_OUTAGE_S)
        assert proxied.cut > 0, "the outage cut no ledger connection"
    else:
        hold_exclusive_lock(Path(make_url(world.ledger_url).database or ""), LEDGER_OUTAGE_S)
    result = world.finish(run)

    assert result.returncode == 0, result.stderr[-3000:]
    assert world.settle() == reference


def hold_exclusive_lock(database: Path, seconds: float) -> None:
    """Another process's writer holding SQLite's write lock: every writer of the run waits (busy_timeout)."""
    locker = sqlite3.connect(database, isolation_level=None, timeout=5)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        locker.execute("ROLLBACK")
    finally:
        locker.close()
