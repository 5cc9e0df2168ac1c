"""The sandboxes the embedded demo and the end-to-end tests need, started and stopped as one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Self

from deploy.sandbox.ama_registry import AmaPraRegistry
from deploy.sandbox.base import SandboxServer
from deploy.sandbox.cebroker import CeBroker
from deploy.sandbox.file_drop import FileDrop
from deploy.sandbox.hr_endpoint import HrEndpoint
from deploy.sandbox.lrs import XapiLrs
from deploy.sandbox.provider_rest import ProviderRestApi
from deploy.sandbox.schema_registry import SchemaRegistrySandbox
from deploy.sandbox.webinar import WebinarReports

DEFAULT_STATEMENTS = Path(__file__).parents[1] / "sample" / "xapi_statements.json"
DEFAULT_WEBINAR_REPORT = Path(__file__).parents[1] / "sample" / "webinar_report.json"
DEFAULT_CSV_DROPS = Path(__file__).parents[1] / "sample" / "csv_drops"
DEFAULT_PROVIDER_RECORDS = Path(__file__).parents[1] / "sample" / "provider_completions.json"


class SandboxStack:
    """An xAPI LRS loaded from a statements file, a webinar report API, a CSV file drop and a provider REST
    API (sample data), the AMA PRA-style registry, CE Broker, an employer HR endpoint and a Schema Registry."""

    def __init__(
        self,
        statements_path: str | Path = DEFAULT_STATEMENTS,
        *,
        lrs_port: int = 0,
        ama_port: int = 0,
        schema_registry_port: int = 0,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.statements_path = Path(statements_path)
        self.lrs = XapiLrs.from_file(self.statements_path, port=lrs_port)
        self.ama = AmaPraRegistry(port=ama_port, today=today)
        self.cebroker = CeBroker(today=today)
        self.hr = HrEndpoint()
        self.webinar = WebinarReports.from_file(DEFAULT_WEBINAR_REPORT)
        self.file_drop = FileDrop(DEFAULT_CSV_DROPS)
        self.provider_rest = ProviderRestApi.from_file(DEFAULT_PROVIDER_RECORDS)
        self.schema_registry = SchemaRegistrySandbox(port=schema_registry_port)

    @property
    def servers(self) -> tuple[SandboxServer, ...]:
        return (*self.by_kind().values(), self.schema_registry)

    def by_kind(self) -> dict[str, SandboxServer]:
        """The sandbox standing in for each connector kind of `cmesync.toml`."""
        return {
            "xapi": self.lrs,
            "ama_pra": self.ama,
            "cebroker": self.cebroker,
            "employer_hr": self.hr,
            "webinar": self.webinar,
            "csv_drop": self.file_drop,
            "provider_rest": self.provider_rest,
        }

    def urls(self) -> dict[str, str]:
        """Connector kind (and "schema_registry") → the URL of the sandbox standing in for it."""
        return {
            **{kind: server.url for kind, server in self.by_kind().items()},
            "schema_registry": self.schema_registry.url,
        }

    def start(self) -> Self:
        try:
            for server in self.servers:
                server.start()
        except BaseException:
            self.stop()  # a busy port on the third server must not leave the first two listening
            raise
        return self

    def stop(self) -> None:
        """Stop every server, even when one of them fails to stop; the first failure is raised at the end."""
        failures: list[Exception] = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as err:
                failures.append(err)
        if failures:
            raise failures[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
