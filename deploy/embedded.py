"""The embedded default: a Tansu broker and the sandboxes on loopback, for the demo and the tests."""

from __future__ import annotations

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
        sandboxes = self.sandboxes.by_kind()
        endpoints = {
            "kafka_bootstrap": self.broker.bootstrap,
            "schema_registry_url": self.sandboxes.schema_registry.url,
        }
        for connector in [*settings.sources, *settings.registries]:
            if not connector.base_url:
                endpoints[f"{connector.name}.base_url"] = sandboxes[connector.kind].url
        return endpoints
