"""The ledger's run lock (ledger/run_lock.py), on SQLite and the real PostgreSQL: a second writer is refused at
once with a line naming the holder; the lock goes when its holder goes, even by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger.run_lock import RunLocked, run_lock
from tests.ops.conftest import wait_for

pytestmark = pytest.mark.dialect

REPO = Path(__file__).resolve().parents[2]

HOLD = textwrap.dedent(
    """
    import sys, time
    from ledger.run_lock import run_lock
    with run_lock(sys.argv[1], "run-held-elsewhere", "nightly"):
        print("held", flush=True)
        time.sleep(600)
    """
)


def holder_process(ledger_url: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, ledger_url],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held", "the holder process did not take the lock"
    return process


def test_given_the_lock_held_when_a_second_writer_asks_then_it_is_refused_naming_the_holder(ledger_url: str) -> None:
    with (
        run_lock(ledger_url, "run-first", "nightly") as first,
        pytest.raises(RunLocked) as refused,
        run_lock(ledger_url, "run-second", "replay"),
    ):
        pytest.fail("two writers held the ledger at once")
    message = str(refused.value)
    assert "\n" not in message
    for part in ("run run-first (nightly)", f"host {first.host}", f"pid {os.getpid()}", f"started {first.started_at}"):
        assert part in message, message
    assert refused.value.holder == first


def test_given_the_lock_released_when_a_second_writer_asks_then_it_holds_it(ledger_url: str) -> None:
    with run_lock(ledger_url, "run-first", "nightly"):
        pass
    with run_lock(ledger_url, "run-second", "nightly") as second:
        assert second.run_id == "run-second"


def test_given_the_holder_sigkilled_when_another_writer_asks_then_it_holds_the_lock(ledger_url: str) -> None:
    holder = holder_process(ledger_url)
    try:
        refusal = rf"run run-held-elsewhere \(nightly\) on host .*, pid {holder.pid},"
        with pytest.raises(RunLocked, match=refusal), run_lock(ledger_url, "run-mine", "nightly"):
            pytest.fail("the lock held by another process was taken")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.wait()

    def taken() -> bool:
        # PostgreSQL notices the dead session's socket a moment after the process is gone.
        try:
            with run_lock(ledger_url, "run-mine", "nightly"):
                return True
        except RunLocked:
            return False

    wait_for(taken, "the killed holder's lock to be released")


def test_given_an_in_memory_ledger_when_two_writers_ask_then_no_lock_is_needed() -> None:
    with run_lock("sqlite://", "run-a", "nightly"), run_lock("sqlite:///:memory:", "run-b", "nightly"):
        pass
