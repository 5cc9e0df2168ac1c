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
import traceback
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from flows import cli, cli_broker, cli_certificates, cli_export, cli_render

REPO = Path(__file__).resolve().parents[1]


def cmesync(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`cmesync ARGS` in this process, from `cwd` (the repository, as the subprocess ran), stderr including every
    log record the command emits, as a subprocess's stderr would: a PII check over it still sees the logs.
    `env`, if given, is the whole environment during the call, as a subprocess's would be."""
    with _environment(env):
        return _invoke(args, cwd)


@contextlib.contextmanager
def _environment(env: dict[str, str] | None) -> Iterator[None]:
    """os.environ replaced in place (rich's consoles read COLUMNS from that very mapping) and restored after, so
    what a command sets there (`run --embedded` points CMESYNC_LEDGER_URL at its ledger) ends with it."""
    saved = dict(os.environ)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _fit_consoles() -> None:
    """The CLI's module-level rich consoles at the width a fresh process would give them (COLUMNS, else rich's 80
    for a pipe): they were made at the first import, in whatever environment that call had."""
    columns = os.environ.get("COLUMNS", "")
    for module in (cli, cli_broker, cli_certificates, cli_export, cli_render):
        for console in vars(module).values():
            if isinstance(console, Console):
                console.width = int(columns) if columns.isdigit() else 80


def _invoke(args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    _fit_consoles()
    stdout, stderr = io.StringIO(), io.StringIO()
    logs = logging.StreamHandler(stderr)
    root = logging.getLogger()
    before = os.getcwd()
    os.chdir(cwd)
    root.addHandler(logs)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(list(args))
            except Exception:  # what the interpreter does with an uncaught one: a traceback and exit code 1
                traceback.print_exc()
                code = 1
    finally:
        root.removeHandler(logs)
        os.chdir(before)
    _fit_consoles()
    return subprocess.CompletedProcess(["cmesync", *args], code, stdout.getvalue(), stderr.getvalue())
