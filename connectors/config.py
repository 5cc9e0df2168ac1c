"""What every connector's config model shares, and the registry of connector kinds (DESIGN §6).

Each connector module declares its config model beside its class (a pydantic model with a `kind` tag and a
`build(wiring)` that makes the connector) and registers it with `source_kind` / `registry_kind`.
`pipeline/config.py` reads the kinds to type `sources` and `registries`, and `pipeline/factory.py` only
calls `build`, so a new kind is one module here plus its test harness entry.

Secrets never sit in the file in production: each connector names the environment variable that holds
its secret (`password_env`, `token_env`); the inline value is only a fallback for the local sandboxes.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from connectors.http import HttpClient, HttpObserver, RateLimiter, RetryPolicy, TlsSettings
from connectors.registries.base import Registry
from connectors.sources.base import Source

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "deploy" / "sample"


class ConfigError(ValueError):
    """The configuration file or environment is unusable; the message says what to fix."""


_DELAY = re.compile(r"^(\d+)([smhd])$")


def _delay(value: object) -> object:
    """A delay as written in the file: `0s`, `90m`, `1h`, `3d` (or what pydantic reads as a timedelta)."""
    if isinstance(value, str) and (match := _DELAY.match(value.strip())):
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
        return timedelta(**{unit: int(match[1])})
    return value


Delay = Annotated[timedelta, BeforeValidator(_delay)]


def secret(env_name: str | None, inline: str, what: str) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if value:
            return value
    if inline:
        return inline
    raise ConfigError(f"{what}: set the environment variable {env_name or '(none named)'} or an inline value")


@dataclass(frozen=True)
class Wiring:
    """What a connector is built with that the connector layer cannot make itself: the crash points of the
    fault suite and the metrics observer of a registry's HTTP client (both live in `pipeline`)."""

    crash_point: Callable[[str], None]
    registry_observer: Callable[[str], HttpObserver | None]


RETRY_BACKOFF = "First wait between HTTP attempts, doubling up to 10 s, plus as much jitter; Retry-After wins."


def retry_policy(max_attempts: int, backoff_s: float) -> RetryPolicy:
    """The shared retry policy with this connector's attempts and first backoff (the jitter scales with it, as in
    RetryPolicy's defaults, so a short backoff is not drowned in 0.2 s of jitter)."""
    return RetryPolicy(max_attempts=max_attempts, initial_backoff_s=backoff_s, jitter_s=backoff_s)


class HttpTlsConfig(BaseModel):
    """How an HTTPS connector trusts its endpoint, and the client certificate it shows when asked."""

    # Every connector table inherits this: a misspelt key is refused, not silently left at its default.
    model_config = ConfigDict(extra="forbid")

    verify: bool | Path = Field(True, description="true = system CAs, false = no check, or a PEM CA bundle path.")
    client_cert: Path | None = Field(None, description="PEM client certificate, for mutual TLS.")
    client_key: Path | None = Field(None, description="PEM key of client_cert (when not in the same file).")

    @model_validator(mode="after")
    def _tls_files_exist(self) -> HttpTlsConfig:
        name = getattr(self, "name", "?")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError(f"connector {name}: client_key needs client_cert")
        for what, path in (("verify", self.verify), ("client_cert", self.client_cert), ("client_key", self.client_key)):
            if isinstance(path, Path) and not path.is_file():
                raise ValueError(f"connector {name}: {what} {path} is not a readable file")
        return self

    def tls_settings(self) -> TlsSettings:
        return TlsSettings(
            verify=str(self.verify) if isinstance(self.verify, Path) else self.verify,
            client_cert=str(self.client_cert) if self.client_cert else None,
            client_key=str(self.client_key) if self.client_key else None,
        )


class SourceBaseConfig(HttpTlsConfig):
    """What every source connector has: where it is, how much per page, how hard to retry, its token."""

    name: str
    base_url: str = Field("", description="Empty = the embedded sandbox.")
    page_size: int = Field(100, ge=1, le=500)
    max_attempts: int = Field(6, ge=1, le=20, description="HTTP attempts per request before the pull fails.")
    retry_backoff_s: float = Field(0.2, gt=0, le=10, description=RETRY_BACKOFF)
    token: str = ""
    token_env: str | None = None

    def bearer(self) -> str:
        return secret(self.token_env, self.token, f"source {self.name} token")

    def client(self, bearer: str | None = None, **kwargs: Any) -> HttpClient:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        retry = retry_policy(self.max_attempts, self.retry_backoff_s)
        return HttpClient(self.base_url, retry=retry, headers=headers, tls=self.tls_settings(), **kwargs)

    @abstractmethod
    def build(self, wiring: Wiring) -> Source:
        """The source this table configures."""


class RegistryBaseConfig(HttpTlsConfig):
    """What every registry connector has: where it is, how much goes per call, how fast, and what the
    nightly diff does with holdings the ledger does not back (revoked or unknown in the ledger)."""

    name: str
    base_url: str = Field("", description="Empty = the embedded sandbox registry.")
    batch_size: int = Field(100, ge=1, le=500, description="Credit records per delivery call.")
    page_size: int = Field(200, ge=1, le=500, description="Holdings per page read by the nightly diff.")
    rate_limit_per_s: float | None = Field(None, gt=0, description="Most requests per second; none = unlimited.")
    max_attempts: int = Field(6, ge=1, le=20, description="HTTP attempts per call before REGISTRY_UNAVAILABLE.")
    retry_backoff_s: float = Field(0.2, gt=0, le=10, description=RETRY_BACKOFF)
    extra_holdings: Literal["report", "revoke"] = "report"
    retry_delays: list[Delay] | None = Field(
        None, description="Automatic re-deliveries after REGISTRY_UNAVAILABLE; none = the global retry_delays."
    )

    def client(self, wiring: Wiring, **kwargs: Any) -> HttpClient:
        limit = RateLimiter(self.rate_limit_per_s) if self.rate_limit_per_s else None
        retry = retry_policy(self.max_attempts, self.retry_backoff_s)
        return HttpClient(
            self.base_url,
            retry=retry,
            rate_limit=limit,
            tls=self.tls_settings(),
            observer=wiring.registry_observer(self.name),
            **kwargs,
        )

    @abstractmethod
    def build(self, wiring: Wiring) -> Registry:
        """The registry this table configures."""


_SOURCE_KINDS: dict[str, type[SourceBaseConfig]] = {}
_REGISTRY_KINDS: dict[str, type[RegistryBaseConfig]] = {}
S = TypeVar("S", bound=type[SourceBaseConfig])
R = TypeVar("R", bound=type[RegistryBaseConfig])


def source_kind(model: S) -> S:
    """Class decorator: `model` configures the source kind its `kind` field names."""
    _SOURCE_KINDS[_tag(model)] = model
    return model


def registry_kind(model: R) -> R:
    """Class decorator: `model` configures the registry kind its `kind` field names."""
    _REGISTRY_KINDS[_tag(model)] = model
    return model


def source_kinds() -> tuple[type[SourceBaseConfig], ...]:
    """Every source kind's config model, from every module of `connectors.sources`, by module name."""
    _import_all("connectors.sources")
    return tuple(sorted(_SOURCE_KINDS.values(), key=lambda m: m.__module__))


def registry_kinds() -> tuple[type[RegistryBaseConfig], ...]:
    """Every registry kind's config model, from every module of `connectors.registries`, by module name."""
    _import_all("connectors.registries")
    return tuple(sorted(_REGISTRY_KINDS.values(), key=lambda m: m.__module__))


def _tag(model: type[BaseModel]) -> str:
    return str(model.model_fields["kind"].default)


def _import_all(package: str) -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)):
        importlib.import_module(f"{package}.{module}")
