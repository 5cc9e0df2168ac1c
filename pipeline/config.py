"""All configuration in one typed place: `cmesync.toml`, overridden by CMESYNC_* environment variables.

The `sources` and `registries` tables take the config models the connector kinds declare beside their
connectors (`connectors/config.py`): this file composes them and adds what is the pipeline's own.
"""

from __future__ import annotations

import difflib
import operator
import os
import tomllib
import typing
from datetime import timedelta
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.config import SAMPLE_DIR, ConfigError, Delay, registry_kinds, source_kinds
from reconcile.professions import ProfessionMap, ProfessionMapError, load_professions, parse_professions

PROFILES_DIR = Path(__file__).resolve().parents[1] / "deploy" / "profiles"
PROFESSIONS_FILE = Path(__file__).resolve().parents[1] / "deploy" / "professions.toml"
CERTIFICATES_FILE = Path(__file__).resolve().parents[1] / "deploy" / "certificates.toml"
DEFAULT_CONFIG = Path("cmesync.toml")


# Registry unavailable: the nightly run (and the stream) sends a failed delivery again this long after its
# latest failure, once per delay; after the last one it waits for an operator (`cmesync replay`).
DEFAULT_RETRY_DELAYS = [timedelta(0), timedelta(hours=1), timedelta(hours=6)]


SourceConfig = Annotated[reduce(operator.or_, source_kinds()), Field(discriminator="kind")]
RegistryConfig = Annotated[reduce(operator.or_, registry_kinds()), Field(discriminator="kind")]


class ComplianceConfig(BaseModel):
    """Licence-cycle compliance: where the requirement profiles and the roster of licences are, and how close
    a deadline makes an unmet cycle "at risk" (`reconcile/compliance/`)."""

    model_config = {"extra": "forbid"}

    profiles_dir: Path = Field(PROFILES_DIR, description="Requirement profiles, one *.toml file each.")
    roster_path: Path = Field(
        SAMPLE_DIR / "compliance_roster.csv",
        description="CSV: employer,employee_id,npi,email,licence_number,licence_state,profession,licence_expires,"
        "profile,attributes",
    )
    at_risk_days: int = Field(90, ge=0, le=3650, description="An unmet cycle this close to its deadline is at risk.")


class CertificatesConfig(BaseModel):
    """Certificates of completion (`pipeline/reports/certificates.py`): the accreditation statement per accreditor and
    the credit type names, from the file at `path`, with `statements` replacing an accreditor's text."""

    model_config = {"extra": "forbid"}

    path: Path = Field(CERTIFICATES_FILE, description="TOML with [statements] and [credit_type_names] tables.")
    statements: dict[str, str] = Field(default_factory=dict, description='e.g. {ANCC = "… accredited …"}.')


class ProfessionsConfig(BaseModel):
    """Licence/profession codes → the credit table's professions (`reconcile/professions.py`): the file at
    `path`, with `codes` added over it (a code in both takes the one here)."""

    model_config = {"extra": "forbid"}

    path: Path = Field(PROFESSIONS_FILE, description="TOML file with a [codes] table; default the shipped one.")
    codes: dict[str, str] = Field(default_factory=dict, description='Extra codes, e.g. {"RNP" = "NP"}.')

    @model_validator(mode="after")
    def _usable(self) -> ProfessionsConfig:
        try:
            self.mapping()
        except ProfessionMapError as err:
            raise ValueError(f"professions: {err}") from None
        return self

    def mapping(self) -> ProfessionMap:
        shipped = load_professions(self.path)
        extra = parse_professions({"codes": self.codes}).codes if self.codes else {}
        return ProfessionMap({**shipped.codes, **extra})


class DeadLettersConfig(BaseModel):
    """What dead letters on the cme.deadletter.v1 topic carry."""

    model_config = {"extra": "forbid"}

    publish_payload: bool = Field(
        False,
        description="Put the original record (NPI, e-mail, names) on the topic; only for consumers allowed PII.",
    )


class MetricsConfig(BaseModel):
    """Prometheus metrics (`pipeline/metrics.py`): the stream serves them over HTTP, the nightly run writes a
    textfile for node-exporter's textfile collector or pushes them to a Pushgateway."""

    model_config = {"extra": "forbid"}

    port: int | None = Field(None, ge=1, le=65535, description="`cmesync stream` serves /metrics here; none = off.")
    host: str = Field("127.0.0.1", description="Address the metrics port binds to (0.0.0.0 = every interface).")
    textfile: Path | None = Field(None, description="The nightly run writes its metrics here (a *.prom file).")
    pushgateway: str = Field("", description="host:port or URL of a Pushgateway the nightly run pushes to.")
    job: str = Field("cmesync", min_length=1, description="Pushgateway job name.")


class LoggingConfig(BaseModel):
    """How log lines look on stderr: text for people, json (one object per line) for log shippers."""

    model_config = {"extra": "forbid"}

    format: Literal["text", "json"] = "text"


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurityConfig(BaseModel):
    """How every Kafka client we build (producers, consumers, admin) reaches the brokers: TLS and/or SASL.
    Mapped to each client library's own settings by `pipeline/kafka/security.py`. The SASL password only
    ever comes from the environment variable named here."""

    model_config = {"extra": "forbid"}

    security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    ssl_cafile: Path | None = Field(None, description="PEM CA bundle of the brokers' certificates; none = system.")
    ssl_certfile: Path | None = Field(None, description="PEM client certificate, for brokers that require mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile (unencrypted).")
    ssl_check_hostname: bool = Field(True, description="Check that the broker certificate names the host dialled.")
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str = ""
    sasl_password_env: str | None = Field(None, description="Environment variable holding the SASL password.")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurityConfig:
        where = f"kafka_security (security_protocol {self.security_protocol})"
        ssl_set = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n) is not None]
        if ssl_set and not self.uses_tls:
            raise ValueError(f"{where}: {', '.join(ssl_set)} set but TLS is off; use SSL or SASL_SSL")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(f"{where}: set ssl_certfile and ssl_keyfile together")
        for name in ssl_set:
            if not Path(getattr(self, name)).is_file():
                raise ValueError(f"{where}: {name} {getattr(self, name)} is not a readable file")
        sasl_set = [n for n in ("sasl_mechanism", "sasl_username", "sasl_password_env") if getattr(self, n)]
        if self.uses_sasl:
            missing = [n for n in ("sasl_mechanism", "sasl_username", "sasl_password_env") if n not in sasl_set]
            if missing:
                raise ValueError(f"{where}: SASL needs {', '.join(missing)}")
        elif sasl_set:
            raise ValueError(f"{where}: {', '.join(sasl_set)} set but SASL is off; use SASL_PLAINTEXT or SASL_SSL")
        return self

    def sasl_password(self) -> str:
        """The password from `sasl_password_env`, read when a client is built; ConfigError names the variable."""
        name = self.sasl_password_env or "(none named)"
        password = os.environ.get(name)
        if not password:
            raise ConfigError(f"kafka_security: SASL password: set the environment variable {name}")
        return password


class Settings(BaseSettings):
    """The whole configuration. Empty endpoint strings mean "use the embedded default"."""

    model_config = SettingsConfigDict(env_prefix="CMESYNC_", extra="forbid")

    kafka_bootstrap: str = ""
    schema_registry_url: str = ""
    ledger_url: str = "sqlite:///./var/cmesync.db"
    catalog_path: Path = SAMPLE_DIR / "catalog.json"
    catalog_url: str = Field("", description="http(s) URL of the activity catalog, JSON or CSV; empty = catalog_path.")
    consumer_group: str = "reconciler"
    kafka_backend: Literal["kafka-python", "confluent-kafka"] = Field(
        "kafka-python",
        description="Kafka client library; confluent-kafka (librdkafka) is an optional extra: cmesync[confluent].",
    )
    kafka_security: KafkaSecurityConfig = Field(default_factory=KafkaSecurityConfig)
    batch_size: int = Field(500, ge=1, le=10_000)
    reports_dir: Path = Field(Path("var/reports"), description="Where each nightly run's HTML report is written.")
    sources: list[SourceConfig] = Field(default_factory=list)
    registries: list[RegistryConfig] = Field(default_factory=list)
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)
    certificates: CertificatesConfig = Field(default_factory=CertificatesConfig)
    professions: ProfessionsConfig = Field(default_factory=ProfessionsConfig)
    deadletters: DeadLettersConfig = Field(default_factory=DeadLettersConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    retry_delays: list[Delay] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_DELAYS),
        description="After a delivery failed with REGISTRY_UNAVAILABLE, send it again this long after each "
        "failure (0s = the next run), once per delay; [] = only by replay.",
    )

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
        named = path or (Path(os.environ["CMESYNC_CONFIG"]) if os.environ.get("CMESYNC_CONFIG") else None)
        chosen = named or DEFAULT_CONFIG
        data: dict[str, object] = {}
        if chosen.exists():
            try:
                data = tomllib.loads(chosen.read_text())
            except tomllib.TOMLDecodeError as err:
                raise ConfigError(f"{chosen}: {err}") from err
        elif path is not None:
            raise ConfigError(f"config file {path} does not exist")
        elif named is not None:
            raise ConfigError(f"config file {named} (from CMESYNC_CONFIG) does not exist")
        else:
            data = tomllib.loads((SAMPLE_DIR / "cmesync.toml").read_text())
        try:
            return cls(**data)
        except ValidationError as err:
            raise ConfigError(f"{chosen}: " + "; ".join(_explain(e) for e in err.errors())) from None
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

    def retry_delays_of(self, registry: str) -> list[timedelta]:
        config = next(r for r in self.registries if r.name == registry)
        return self.retry_delays if config.retry_delays is None else config.retry_delays

    def missing_endpoints(self) -> list[str]:
        keys = [k for k in ("kafka_bootstrap", "schema_registry_url") if not getattr(self, k)]
        keys += [f"{c.name}.base_url" for c in [*self.sources, *self.registries] if not c.base_url]
        return keys


def _explain(error: Any) -> str:
    """One validation error as `path: what`, an unknown key with the nearest valid key of its table."""
    loc = tuple(error["loc"])
    path = _key_path(loc)
    if error["type"] != "extra_forbidden":
        return f"{path}: {error['msg']}" if path else str(error["msg"])
    known = sorted(_model_at(loc[:-1]).model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else f"; valid keys: {', '.join(known)}"
    return f"{path}: unknown key{hint}"


def _key_path(loc: tuple[Any, ...]) -> str:
    """`sources[0].pasword_env` from pydantic's location (which also holds the discriminator tag)."""
    text = ""
    model: type[BaseModel] | None = Settings
    choices: list[type[BaseModel]] = []
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif model is None and any(_kind(m) == part for m in choices):
            model = next(m for m in choices if _kind(m) == part)
        else:
            text += f".{part}" if text else str(part)
            field = model.model_fields.get(str(part)) if model else None
            choices = _models_in(field.annotation) if field else []
            model = choices[0] if len(choices) == 1 else None
    return text


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model of the table at `loc` (a pydantic location), through lists and `kind`-tagged unions."""
    model: type[BaseModel] = Settings
    choices: list[type[BaseModel]] = []
    for part in loc:
        if isinstance(part, int):
            continue
        tagged = [m for m in choices if _kind(m) == part]
        if tagged:
            model, choices = tagged[0], []
            continue
        field = model.model_fields.get(str(part))
        choices = _models_in(field.annotation) if field else []
        if len(choices) == 1:
            model, choices = choices[0], []
    return model


def _kind(model: type[BaseModel]) -> object:
    field = model.model_fields.get("kind")
    return field.default if field else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
