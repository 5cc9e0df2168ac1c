"""The embedded default: a Tansu broker and the sandboxes on loopback, for the demo and the tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from deploy.broker import EmbeddedBroker
from deploy.sandbox.stack import SandboxStack
from pipeline.config import SAMPLE_DIR, Settings


class EmbeddedStack:
    """Starts what `Settings` leaves empty: a broker and the sandboxes, and says where they listen."""

    def __init__(self, statements_path: Path = SAMPLE_DIR / "xapi_statements.json") -> None:
        self.statements_path = statements_path
        self.broker = EmbeddedBroker()
        self.sandboxes: SandboxStack | None = None

    def start(self) -> EmbeddedStack:
        try:
            self.broker.start()
            self.sandboxes = SandboxStack(self.statements_path).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.sandboxes is not None:
            self.sandboxes.stop()
            self.sandboxes = None
        self.broker.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def endpoints(self, settings: Settings) -> dict[str, str]:
        assert self.sandboxes is not None, "the embedded stack is not started"
        return embedded_endpoints(settings, self.broker.bootstrap, self.sandboxes.urls())


def embedded_endpoints(settings: Settings, bootstrap: str, sandbox_urls: Mapping[str, str]) -> dict[str, str]:
    """`Settings.with_endpoints` overrides: the broker, the Schema Registry sandbox, and the sandbox of its kind
    for every connector whose `base_url` is empty. `sandbox_urls` maps a connector kind or "schema_registry"
    to a URL, as `SandboxStack.urls()` and `python -m deploy.sandbox --json` give them."""
    endpoints = {"kafka_bootstrap": bootstrap, "schema_registry_url": sandbox_urls["schema_registry"]}
    for connector in [*settings.sources, *settings.registries]:
        if not connector.base_url:
            endpoints[f"{connector.name}.base_url"] = sandbox_urls[connector.kind]
    return endpoints
