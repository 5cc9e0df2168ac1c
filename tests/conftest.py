"""Shared fixtures: real parts only — the embedded Tansu broker, sandbox HTTP servers, SQLite and the
PostgreSQL server on this machine, one Prefect test harness per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deploy.broker import EmbeddedBroker, ensure_topics
from deploy.sandbox.stack import SandboxStack
from pipeline.config import SAMPLE_DIR

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

POSTGRES_ADMIN_DSN = os.environ.get("CMESYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def kafka_bootstrap() -> Iterator[str]:
    """A broker with our topics and nothing else in them: a fresh embedded Tansu per test (it starts in
    well under a second), or the broker named by CMESYNC_KAFKA_BOOTSTRAP."""
    external = os.environ.get("CMESYNC_KAFKA_BOOTSTRAP")
    if external:
        ensure_topics(external)
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def sandboxes() -> Iterator[SandboxStack]:
    with SandboxStack(SAMPLE_DIR / "xapi_statements.json") as stack:
        yield stack


def _postgres_database() -> Iterator[str]:
    name = f"cmesync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every ledger test runs on SQLite and on the real PostgreSQL server, each in a fresh database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
