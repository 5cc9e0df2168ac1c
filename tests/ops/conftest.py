"""Fixtures for the operations tests: the real `cmesync` command (in process, or in a subprocess where a test
needs one), against the real broker, the sandboxes started in this process (their URLs reach the command through
a config file in tmp_path), the ledger on SQLite and PostgreSQL, and the session's Prefect test server for the
commands that run a flow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from deploy.sandbox.stack import SandboxStack
from ledger import tables as t
from ledger.store import Ledger
from pipeline.config import SAMPLE_DIR
from tests import in_process

REPO = Path(__file__).resolve().parents[2]
CMESYNC = [sys.executable, "-m", "flows.cli"]
# Options that configure the whole process's logging: such a command runs in a process of its own.
PROCESS_WIDE = frozenset({"--log-format", "--log-level"})


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as err:
            raise AssertionError(
                f"cmesync {' '.join(self.args)} printed no JSON:\n{self.stdout}\n{self.stderr}"
            ) from err


@dataclass
class Ops:
    """One operator's world: a config file naming the broker, the sandboxes and the ledger."""

    tmp: Path
    kafka_bootstrap: str
    sandboxes: SandboxStack
    ledger_url: str
    env: dict[str, str]
    catalog_path: Path = SAMPLE_DIR / "catalog.json"
    ama_token: str = "ama-demo-token"
    ama_batch_size: int = 50
    batch_size: int = 500
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.tmp / "cmesync.toml"

    @property
    def reports_dir(self) -> Path:
        return self.tmp / "reports"

    def write_config(self) -> Path:
        s = self.sandboxes
        self.config_path.write_text(
            f"""
kafka_bootstrap = "{self.kafka_bootstrap}"
schema_registry_url = "{s.schema_registry.url}"
ledger_url = "{self.ledger_url}"
catalog_path = "{self.catalog_path}"
reports_dir = "{self.reports_dir}"
batch_size = {self.batch_size}

[[sources]]
kind = "xapi"
name = "lms-xapi"
base_url = "{s.lrs.url}"
username = "lrs-demo"
password = "lrs-demo-secret"
page_size = 10

[[registries]]
kind = "ama_pra"
name = "ama-pra"
base_url = "{s.ama.url}"
token = "{self.ama_token}"
batch_size = {self.ama_batch_size}
max_attempts = 2
""",
            encoding="utf-8",
        )
        return self.config_path

    def cli(self, *args: str, timeout_s: float = 300) -> CliResult:
        """Run `cmesync ARGS --config <this world's config>` and wait for it: in this process (tests/in_process.py),
        unless it sets the process's logging (`--log-format`, `--log-level`, `[logging] format = "json"`), which
        would outlive the command."""
        command = [*args, "--config", str(self.config_path)]
        if PROCESS_WIDE.isdisjoint(args) and not self.json_logs():
            done = in_process.cmesync(*command, cwd=REPO, env=self.env)
        else:
            done = subprocess.run(
                [*CMESYNC, *command], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout_s
            )
        return CliResult(tuple(args), done.returncode, done.stdout, done.stderr)

    def json_logs(self) -> bool:
        """JSON logs or Prometheus metrics (whose registry is the process's) configured: a process of its own."""
        config = tomllib.loads(self.config_path.read_text())
        return config.get("logging", {}).get("format") == "json" or "metrics" in config

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `cmesync ARGS --config <config>` in the background (for `stream` and `serve`), with Ctrl-C's
        SIGINT at its default as in a terminal: a suite started in the background (`nohup make test &`) ignores
        SIGINT, and an ignored signal is inherited, so the Ctrl-C tests would signal a process deaf to it."""
        return subprocess.Popen(
            [*CMESYNC, *args, "--config", str(self.config_path)],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_sigint_at_default,
        )


def _sigint_at_default() -> None:
    """Run in the child between fork and exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def command_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a `cmesync` subprocess: the session's Prefect test server, no stray CMESYNC_* overrides
    except the broker the fixtures chose."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("CMESYNC_") or k == "CMESYNC_KAFKA_BOOTSTRAP"}
    env.update(
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(REPO),
        COLUMNS="200",
    )
    return env


@pytest.fixture
def ops(
    prefect_harness: None, tmp_path: Path, kafka_bootstrap: str, sandboxes: SandboxStack, ledger_url: str
) -> Iterator[Ops]:
    world = Ops(tmp_path, kafka_bootstrap, sandboxes, ledger_url, command_env(tmp_path))
    world.write_config()
    yield world


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 120.0, every_s: float = 0.1) -> Any:
    """Poll until `condition()` is truthy and return it; fail naming `what` if it never is."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(every_s)
    raise AssertionError(f"gave up waiting for {what}")


def events_taken(ledger: Ledger) -> int:
    """Attendance messages the ledger has taken: accepted events plus those rejected at reconcile."""
    with ledger.engine.connect() as conn:
        events = conn.scalar(select(func.count()).select_from(t.events))
        rejected = conn.scalar(
            select(func.count()).select_from(t.dead_letters).where(t.dead_letters.c.stage == "reconcile")
        )
    return int(events or 0) + int(rejected or 0)


def credit_versions(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(t.credits)) or 0)
