"""Crash points: a test hook through which the fault-injection suite (`tests/faults/`) kills a run at a named
place in the pipeline, to prove DESIGN §1 — a crash at any point followed by a rerun converges, with no lost
and no duplicated credit.

Why this sits in production code: a kill sent from outside cannot be aimed between two given statements (after
the broker acknowledged a page and before its cursor is saved, after the ledger committed a batch and before
its offsets are), and those narrow gaps are exactly where a lost or doubled credit would hide. The names are the
gaps; `tests/faults/` kills the real `cmesync run` at each of them and reruns it.

`CMESYNC_CRASH_AT=<name>` SIGKILLs the process the first time `<name>` is reached, `<name>:<N>` the N-th time.
The variable is read once, at import; unset (always, outside the tests) a crash point costs one string
comparison.
"""

from __future__ import annotations

import itertools
import os
import signal

CRASH_AT_ENV = "CMESYNC_CRASH_AT"


def _target(setting: str | None) -> tuple[str | None, int]:
    """(name, N) of `name` or `name:N`; (None, 0) when unset or empty."""
    if not setting:
        return None, 0
    name, _, nth = setting.partition(":")
    return name, int(nth) if nth else 1


_TARGET, _NTH = _target(os.environ.get(CRASH_AT_ENV))
_reached = itertools.count(1)  # next() on a count is atomic in CPython: safe from the delivery pump's thread


def crash_point(name: str) -> None:
    """Die here, as a power cut or the OOM killer would (no cleanup, no flush), when the tests ask for it."""
    if name == _TARGET and next(_reached) >= _NTH:
        os.kill(os.getpid(), signal.SIGKILL)
