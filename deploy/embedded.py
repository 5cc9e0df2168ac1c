"""The embedded default: a Tansu broker and the sandboxes on loopback, for the demo and the tests."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

from deploy.broker import EmbeddedBroker
from deploy.sandbox.stack import SandboxStack
from pipeline.config import SAMPLE_DIR, Settings


class EmbeddedStack:
    """Starts what `Settings` leaves empty: a broker and the sandboxes, and says where they listen."""

    def __init__(
        self, statements_path: Path = SAMPLE_DIR / "xapi_statements.json", registry_state: Path | None = None
    ) -> None:
        """`registry_state`: a file the sandbox registries' holdings are kept in between runs (the demo's second
        night); None = they start empty."""
        self.statements_path = statements_path
        self.registry_state = registry_state
        self.broker = EmbeddedBroker()
        self.sandboxes: SandboxStack | None = None

    def start(self) -> EmbeddedStack:
        try:
            self.broker.start()
            sandboxes = SandboxStack(self.statements_path)
            if self.registry_state is not None and self.registry_state.exists():
                # Our own file, written by `stop` below.
                saved = pickle.loads(self.registry_state.read_bytes())
                for kind, server in sandboxes.by_kind().items():
                    server.restore(saved.get(kind, {}))
            self.sandboxes = sandboxes.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.sandboxes is not None:
            if self.registry_state is not None:
                state = {kind: server.snapshot() for kind, server in self.sandboxes.by_kind().items()}
                self.registry_state.parent.mkdir(parents=True, exist_ok=True)
                self.registry_state.write_bytes(pickle.dumps(state))
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
