"""`cmesync config check`: is every configured part reachable and usable — the ledger, the catalog, the broker,
the schema registry and each connector (through its own `check()`, DESIGN §9). Checks run side by side, so an
unreachable endpoint costs its retry budget once, not once per component."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from kafka import KafkaAdminClient

from connectors.http import APIError, HttpClient, RetryPolicy
from ledger.store import Ledger
from ledger.url import sqlite_file
from pipeline.catalog import fetch_catalog
from pipeline.config import Settings
from pipeline.factory import build_registry, build_sources
from pipeline.kafka.security import kafka_python_options
from pipeline.kafka.topics import TOPICS

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
EMBEDDED_ONLY = "empty: only `cmesync run --embedded` fills it"
KAFKA_ANSWER_S = 30.0


@dataclass(frozen=True)
class CheckResult:
    component: str
    outcome: str  # ok, failed or skipped
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Skipped(Exception):
    """The check does not apply as configured; the message says why."""


def check_settings(settings: Settings) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("ledger", lambda: _ledger(settings)),
        ("catalog", lambda: _catalog(settings)),
        ("kafka", lambda: _kafka(settings)),
        ("schema registry", lambda: _schema_registry(settings)),
    ]
    checks += [(f"source {s.name}", _source_check(settings, s.name)) for s in settings.sources]
    checks += [(f"registry {r.name}", _registry_check(settings, r.name)) for r in settings.registries]
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = [(name, pool.submit(_run, check)) for name, check in checks]
        return [CheckResult(name, *future.result()) for name, future in futures]


def _run(check: Callable[[], str]) -> tuple[str, str]:
    try:
        return OK, check()
    except Skipped as why:
        return SKIPPED, str(why)
    except Exception as err:
        # Connector and HTTP errors are written without payloads or secrets; the type helps when the
        # message is terse (a refused connection, an unknown host).
        return FAILED, f"{type(err).__name__}: {err}"


def _ledger(settings: Settings) -> str:
    file = sqlite_file(settings.ledger_url)
    if file and not Path(file).exists():
        return f"sqlite file {file} does not exist yet (the first run creates it)"
    with Ledger(settings.ledger_url) as ledger:
        version = ledger.schema_version()
        if version is None:
            return f"{ledger.dialect} reachable; not migrated yet (the first run migrates it)"
        return f"{ledger.dialect} reachable, schema version {version}"


def _catalog(settings: Settings) -> str:
    catalog = fetch_catalog(settings)
    return f"{len(catalog.activities)} activities from {settings.catalog_url or settings.catalog_path}"


def _kafka(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise Skipped(EMBEDDED_ONLY)
    topics: list[set[str]] = []
    errors: list[Exception] = []

    def probe() -> None:
        admin = None
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id="cmesync-check",
                **kafka_python_options(settings.kafka_security),
            )
            topics.append(set(admin.list_topics()))
        except Exception as err:
            errors.append(err)
        finally:
            if admin is not None:
                admin.close()

    # kafka-python waits forever on a listener that speaks another protocol (SSL client, plaintext listener):
    # the probe runs in a daemon thread, so the check reports that instead of hanging with it.
    thread = threading.Thread(target=probe, name="cmesync-check-kafka", daemon=True)
    thread.start()
    thread.join(KAFKA_ANSWER_S)
    if thread.is_alive():
        protocol = settings.kafka_security.security_protocol
        raise TimeoutError(
            f"no answer from {settings.kafka_bootstrap} within {KAFKA_ANSWER_S:.0f} s; "
            f"does its listener speak {protocol} ([kafka_security] security_protocol)?"
        )
    if errors:
        raise errors[0]
    missing = [spec.name for spec in TOPICS if spec.name not in topics[0]]
    if missing:
        return f"reachable; topics {', '.join(missing)} missing (the first run creates them)"
    return "reachable; all topics present"


def _schema_registry(settings: Settings) -> str:
    if not settings.schema_registry_url:
        raise Skipped(EMBEDDED_ONLY)
    client = HttpClient(settings.schema_registry_url, retry=RetryPolicy(max_attempts=2))
    try:
        subjects = client.get_json("/subjects")
    except APIError as err:
        raise ConnectionError(str(err)) from None
    return f"reachable; {len(subjects or [])} subjects"


def _source_check(settings: Settings, name: str) -> Callable[[], str]:
    def check() -> str:
        config = next(s for s in settings.sources if s.name == name)
        if not config.base_url:
            raise Skipped(EMBEDDED_ONLY)
        source = build_sources(settings.model_copy(update={"sources": [config]}))[0]
        return _call_check(source, config.base_url)

    return check


def _registry_check(settings: Settings, name: str) -> Callable[[], str]:
    def check() -> str:
        config = next(r for r in settings.registries if r.name == name)
        if not config.base_url:
            raise Skipped(EMBEDDED_ONLY)
        return _call_check(build_registry(config), config.base_url)

    return check


def _call_check(connector: object, base_url: str) -> str:
    check = getattr(connector, "check", None)
    if check is None:
        raise Skipped(f"{type(connector).__name__} has no check(); not verified")
    check()
    return f"reachable at {base_url}, credentials accepted"
