"""`cmesync` run inside the test process: the same `flows.cli.main` the console script calls, with stdout, stderr
and the log records of the call captured, returned as a `CompletedProcess` so that tests written against a
subprocess keep their assertions. Spawning a process costs ~2.3 s of importing Prefect per command; keep a real
process only where a test needs one (kill, signals, a lock held by another process)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from pathlib import Path

from flows.cli import main

REPO = Path(__file__).resolve().parents[1]


def cmesync(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`cmesync ARGS` in this process, from `cwd` (the repository, as the subprocess ran), stderr including every
    log record the command emits, as a subprocess's stderr would: a PII check over it still sees the logs."""
    stdout, stderr = io.StringIO(), io.StringIO()
    logs = logging.StreamHandler(stderr)
    root = logging.getLogger()
    before = os.getcwd()
    os.chdir(cwd)
    root.addHandler(logs)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argument errors and --help end this way, as in the console script
                code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
    finally:
        root.removeHandler(logs)
        os.chdir(before)
    return subprocess.CompletedProcess(["cmesync", *args], code, stdout.getvalue(), stderr.getvalue())
