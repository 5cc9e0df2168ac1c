"""The stream's run lock: its publisher and its delivery pump share one hold on the ledger's run lock, so neither
waits for the other, while any other writer is refused until the last of them is done."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ledger.run_lock import RunLocked, run_lock
from pipeline.stages.stream import StreamRunLock


def refused(ledger_url: str) -> bool:
    """Whether a nightly run would be refused the ledger now."""
    try:
        with run_lock(ledger_url, "run-nightly", "nightly"):
            return False
    except RunLocked:
        return True


def test_given_one_stream_thread_holding_the_lock_when_the_other_needs_it_then_it_shares_it_and_others_wait(
    tmp_path: Path,
) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lock = StreamRunLock(ledger_url)
    delivering = threading.Event()
    delivered = threading.Event()

    def delivery_pass() -> None:
        with lock.held():
            delivering.set()
            delivered.wait(timeout=60)

    pump = threading.Thread(target=delivery_pass)
    pump.start()
    try:
        assert delivering.wait(timeout=60)
        with lock.held():  # the publisher, while the delivery pass holds the lock: no RunLocked
            assert refused(ledger_url)
        assert refused(ledger_url), "released while the delivery pass still held it"
    finally:
        delivered.set()
        pump.join(timeout=60)
    assert not refused(ledger_url)


def test_given_another_writer_holding_the_ledger_when_the_stream_needs_it_then_it_is_refused_and_can_retry(
    tmp_path: Path,
) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lock = StreamRunLock(ledger_url)
    with run_lock(ledger_url, "run-nightly", "nightly"), pytest.raises(RunLocked, match="run-nightly"), lock.held():
        pass
    with lock.held():
        assert refused(ledger_url)
    assert not refused(ledger_url)
