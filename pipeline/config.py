"""All configuration in one typed place: `cmesync.toml`, overridden by CMESYNC_* environment variables.

Secrets never sit in the file in production: each connector names the environment variable that holds
its secret (`password_env`, `token_env`); the inline value is only a fallback for the local sandboxes.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "deploy" / "sample"
DEFAULT_CONFIG = Path("cmesync.toml")


class ConfigError(ValueError):
    """The configuration file or environment is unusable; the message says what to fix."""


def _secret(env_name: str | None, inline: str, what: str) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if value:
            return value
    if inline:
        return inline
    raise ConfigError(f"{what}: set the environment variable {env_name or '(none named)'} or an inline value")


class XapiSourceConfig(BaseModel):
    kind: Literal["xapi"] = "xapi"
    name: str
    base_url: str = Field("", description="Empty = the embedded sandbox LRS.")
    username: str = "lrs-demo"
    password: str = ""
    password_env: str | None = None
    page_size: int = Field(100, ge=1, le=500)
    context_extension_prefix: str = "https://cmesync.org/xapi/ext/"

    def secret(self) -> str:
        return _secret(self.password_env, self.password, f"source {self.name} password")


SourceConfig = Annotated[XapiSourceConfig, Field(discriminator="kind")]


class AmaRegistryConfig(BaseModel):
    kind: Literal["ama_pra"] = "ama_pra"
    name: str
    base_url: str = Field("", description="Empty = the embedded sandbox registry.")
    token: str = ""
    token_env: str | None = None
    batch_size: int = Field(100, ge=1, le=500)

    def secret(self) -> str:
        return _secret(self.token_env, self.token, f"registry {self.name} token")


RegistryConfig = Annotated[AmaRegistryConfig, Field(discriminator="kind")]


class Settings(BaseSettings):
    """The whole configuration. Empty endpoint strings mean "use the embedded default"."""

    model_config = SettingsConfigDict(env_prefix="CMESYNC_", extra="forbid")

    kafka_bootstrap: str = ""
    schema_registry_url: str = ""
    ledger_url: str = "sqlite:///./var/cmesync.db"
    catalog_path: Path = SAMPLE_DIR / "catalog.json"
    consumer_group: str = "reconciler"
    batch_size: int = Field(500, ge=1, le=10_000)
    sources: list[SourceConfig] = Field(default_factory=list)
    registries: list[RegistryConfig] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, which arrives as init kwargs from `load`.
        return env_settings, init_settings

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read `path` (or ./cmesync.toml, or $CMESYNC_CONFIG); with no file at all, the embedded defaults."""
        chosen = path or Path(os.environ.get("CMESYNC_CONFIG", DEFAULT_CONFIG))
        data: dict[str, object] = {}
        if chosen.exists():
            try:
                data = tomllib.loads(chosen.read_text())
            except tomllib.TOMLDecodeError as err:
                raise ConfigError(f"{chosen}: {err}") from err
        elif path is not None:
            raise ConfigError(f"config file {path} does not exist")
        else:
            data = tomllib.loads((SAMPLE_DIR / "cmesync.toml").read_text())
        try:
            return cls(**data)
        except ValueError as err:
            raise ConfigError(f"{chosen}: {err}") from err

    def with_endpoints(self, overrides: dict[str, str]) -> Settings:
        """Fill endpoints: keys `kafka_bootstrap`, `schema_registry_url`, `<connector name>.base_url`."""
        copy = self.model_copy(deep=True)
        for key, value in overrides.items():
            if key in ("kafka_bootstrap", "schema_registry_url"):
                setattr(copy, key, value)
                continue
            name, _, attr = key.partition(".")
            targets = [c for c in [*copy.sources, *copy.registries] if c.name == name]
            if not targets or attr != "base_url":
                raise ConfigError(f"unknown endpoint override {key}")
            targets[0].base_url = value
        return copy

    def missing_endpoints(self) -> list[str]:
        keys = [k for k in ("kafka_bootstrap", "schema_registry_url") if not getattr(self, k)]
        keys += [f"{c.name}.base_url" for c in [*self.sources, *self.registries] if not c.base_url]
        return keys
