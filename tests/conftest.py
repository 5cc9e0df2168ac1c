"""Shared fixtures: real parts only — the embedded Tansu broker, sandbox HTTP servers, SQLite and the
PostgreSQL server on this machine, one Prefect test harness per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deploy.broker import EmbeddedBroker
from deploy.sandbox.stack import SandboxStack
from pipeline.config import SAMPLE_DIR
from pipeline.kafka.topics import ensure_topics

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test on the ledger runs on SQLite; one marked `dialect` (its behaviour is the database's: ledger SQL,
    upserts, locks, migrations, watermarks, fault scenarios on the ledger) runs on PostgreSQL as well."""
    if "ledger_url" in metafunc.fixturenames:
        dialects = ["sqlite", "postgresql"] if metafunc.definition.get_closest_marker("dialect") else ["sqlite"]
        metafunc.parametrize("ledger_url", dialects, indirect=True)


@pytest.fixture
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger database on the dialect `pytest_generate_tests` chose for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# Tiers by what a test uses (DESIGN §10): `unit` needs nothing, `sandbox` needs the HTTP sandboxes, `integration`
# needs the broker, PostgreSQL or Prefect. A tier marked by hand on a test that starts its parts inline is kept.
INTEGRATION_FIXTURES = frozenset({"kafka_bootstrap", "prefect_harness"})
SANDBOX_FIXTURES = frozenset(
    {
        "sandboxes",
        "schema_registry",
        "sandbox",
        "ama_sandbox",
        "cebroker_sandbox",
        "hr_sandbox",
        "sample_lrs",
        "empty_lrs",
        "xapi",
        "ama",
        "ama_session",
        "harness",
        "lenient_sandbox",
        "server",
        "cebroker",
        "pars",
        "api",
        "lrs",
        "catalog_server",
    }
)
TIERS = ("unit", "sandbox", "integration")


def tier_of(item: pytest.Item) -> str:
    fixtures = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    on_postgres = callspec is not None and callspec.params.get("ledger_url") == "postgresql"
    if on_postgres or fixtures & INTEGRATION_FIXTURES or item.get_closest_marker("integration"):
        return "integration"
    if fixtures & SANDBOX_FIXTURES or item.get_closest_marker("sandbox"):
        return "sandbox"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))
