"""All configuration in one typed place: `cmesync.toml`, overridden by CMESYNC_* environment variables.

Secrets never sit in the file in production: each connector names the environment variable that holds
its secret (`password_env`, `token_env`); the inline value is only a fallback for the local sandboxes.
"""

from __future__ import annotations

import codecs
import difflib
import os
import re
import tomllib
import typing
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.http import TlsSettings
from connectors.sources.mapping import MAPPABLE_FIELDS
from reconcile.professions import ProfessionMap, ProfessionMapError, load_professions, parse_professions

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "deploy" / "sample"
PROFILES_DIR = Path(__file__).resolve().parents[1] / "deploy" / "profiles"
PROFESSIONS_FILE = Path(__file__).resolve().parents[1] / "deploy" / "professions.toml"
CERTIFICATES_FILE = Path(__file__).resolve().parents[1] / "deploy" / "certificates.toml"
DEFAULT_CONFIG = Path("cmesync.toml")


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
# Registry unavailable: the nightly run (and the stream) sends a failed delivery again this long after its
# latest failure, once per delay; after the last one it waits for an operator (`cmesync replay`).
DEFAULT_RETRY_DELAYS = [timedelta(0), timedelta(hours=1), timedelta(hours=6)]


def _secret(env_name: str | None, inline: str, what: str) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if value:
            return value
    if inline:
        return inline
    raise ConfigError(f"{what}: set the environment variable {env_name or '(none named)'} or an inline value")


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
    token: str = ""
    token_env: str | None = None

    def bearer(self) -> str:
        return _secret(self.token_env, self.token, f"source {self.name} token")


class XapiSourceConfig(SourceBaseConfig):
    kind: Literal["xapi"] = "xapi"
    auth: Literal["basic", "bearer"] = Field("basic", description="basic: username/password; bearer: token.")
    username: str = "lrs-demo"
    password: str = ""
    password_env: str | None = None
    context_extension_prefix: str = "https://cmesync.org/xapi/ext/"
    account_identities: dict[str, Literal["npi", "board_id", "email"]] = Field(
        default_factory=dict, description="Actor account homePage → which learner identifier its name is."
    )

    def secret(self) -> str:
        if self.auth == "bearer":
            return self.bearer()
        return _secret(self.password_env, self.password, f"source {self.name} password")


class WebinarSourceConfig(SourceBaseConfig):
    kind: Literal["webinar"] = "webinar"
    page_size: int = Field(300, ge=1, le=300)
    webinars: dict[str, str] = Field(
        min_length=1, description="Webinar id → catalog activity (catalog id or a ref listed for it)."
    )
    registrant_questions: dict[
        str, Literal["npi", "profession", "dob_month_day", "board_id", "licence_number", "licence_state"]
    ] = Field(default_factory=dict, description="Registration question title → the learner field it answers.")


class MappedSourceConfig(SourceBaseConfig):
    """Sources whose records are mapped field by field from config (CSV drops, provider REST)."""

    fields: dict[str, str] = Field(description="Event field → the provider's column name or dotted JSON path.")
    kinds: dict[str, Literal["ATTENDED", "COMPLETED", "CLAIMED"]] = Field(
        default_factory=dict, description="Provider status value → event kind (when a kind field is mapped)."
    )
    default_kind: Literal["ATTENDED", "COMPLETED", "CLAIMED"] = "ATTENDED"
    activities: dict[str, str] = Field(
        default_factory=dict, description="Provider activity value → catalog activity; others pass as they are."
    )
    activity: str | None = Field(None, description="The one activity of every record, when none is mapped.")
    timezone: str = Field("UTC", description="IANA zone of times written without an offset.")
    time_formats: list[str] = Field(default_factory=list, description="strptime formats; empty = the defaults.")
    claimed_credit_type: str = "AMA_PRA_1"

    @model_validator(mode="after")
    def _mapping_is_usable(self) -> MappedSourceConfig:
        unknown = set(self.fields) - set(MAPPABLE_FIELDS)
        if unknown:
            raise ValueError(f"source {self.name}: unknown fields {sorted(unknown)}; use {', '.join(MAPPABLE_FIELDS)}")
        if "activity" not in self.fields and not self.activity:
            raise ValueError(f"source {self.name}: map an `activity` field or set `activity`")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"source {self.name}: unknown timezone {self.timezone!r}") from None
        return self


class CsvDropSourceConfig(MappedSourceConfig):
    kind: Literal["csv_drop"] = "csv_drop"
    directory: Path | None = Field(None, description="A local drop directory (else base_url: an HTTP listing).")
    pattern: str = "*.csv"
    page_size: int = Field(500, ge=1, le=10_000, description="Rows per page.")
    fallback_encoding: str | None = Field("latin-1", description="For cells that are not UTF-8; none = refuse.")
    delimiter: str = Field(",", min_length=1, max_length=1)

    @model_validator(mode="after")
    def _one_location(self) -> CsvDropSourceConfig:
        if self.directory is not None:
            if self.base_url:
                raise ValueError(f"source {self.name}: set `directory` or `base_url`, not both")
            # A file: URL, so "no endpoint" keeps meaning "embedded" for every connector kind.
            self.base_url = self.directory.resolve().as_uri()
            self.directory = None
        if self.fallback_encoding:
            try:
                codecs.lookup(self.fallback_encoding)
            except LookupError:
                raise ValueError(f"source {self.name}: unknown encoding {self.fallback_encoding!r}") from None
        return self

    def optional_bearer(self) -> str | None:
        return self.bearer() if self.token or self.token_env else None


class ProviderRestSourceConfig(MappedSourceConfig):
    kind: Literal["provider_rest"] = "provider_rest"
    path: str = "/api/v1/completions"
    records_path: str = "data"
    pagination: Literal["cursor", "page"] = "cursor"
    next_cursor_path: str = "meta.next_cursor"
    cursor_param: str = "cursor"
    page_param: str = "page"
    total_pages_path: str | None = "meta.total_pages"
    page_size_param: str = "limit"
    since_param: str = "updated_since"
    updated_at_path: str = "updated_at"

    @model_validator(mode="after")
    def _records_have_ids(self) -> ProviderRestSourceConfig:
        self.fields.setdefault("event_id", "id")
        return self


SourceConfig = Annotated[
    XapiSourceConfig | WebinarSourceConfig | CsvDropSourceConfig | ProviderRestSourceConfig,
    Field(discriminator="kind"),
]


class RegistryBaseConfig(HttpTlsConfig):
    """What every registry connector has: where it is, how much goes per call, how fast, and what the
    nightly diff does with holdings the ledger does not back (revoked or unknown in the ledger)."""

    name: str
    base_url: str = Field("", description="Empty = the embedded sandbox registry.")
    batch_size: int = Field(100, ge=1, le=500, description="Credit records per delivery call.")
    page_size: int = Field(200, ge=1, le=500, description="Holdings per page read by the nightly diff.")
    rate_limit_per_s: float | None = Field(None, gt=0, description="Most requests per second; none = unlimited.")
    max_attempts: int = Field(6, ge=1, le=20, description="HTTP attempts per call before REGISTRY_UNAVAILABLE.")
    extra_holdings: Literal["report", "revoke"] = "report"
    retry_delays: list[Delay] | None = Field(
        None, description="Automatic re-deliveries after REGISTRY_UNAVAILABLE; none = the global retry_delays."
    )


class AmaRegistryConfig(RegistryBaseConfig):
    kind: Literal["ama_pra"] = "ama_pra"
    token: str = ""
    provider_organization: str = Field("1000001", pattern=r"^[0-9]{7}$", description="Our 7-digit ACCME id.")
    decision_window_hours: int = Field(48, ge=1, description="How long after sending the board's decision is asked.")
    decision_poll_minutes: int = Field(60, ge=0, description="At most one board-decision query per this many minutes.")
    year_close: str = Field(
        "03-31",
        pattern=r"^([0-9]{2}-[0-9]{2})?$",
        description='MM-DD the previous year closes; "": none (PARS judges).',
    )
    token_env: str | None = None

    def secret(self) -> str:
        return _secret(self.token_env, self.token, f"registry {self.name} token")


class CeBrokerRegistryConfig(RegistryBaseConfig):
    """CE Broker's XML web services (domain/registries.md §2)."""

    kind: Literal["cebroker"] = "cebroker"
    parent_provider_id: str = Field(pattern=r"^50-[0-9]+$", description="The parent provider, 50-…")
    provider_id: str | None = Field(None, pattern=r"^50-[0-9]+$", description="The course provider; unset = parent.")
    upload_key: str = ""
    upload_key_env: str | None = None
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=16 * 1024 * 1024, description="Per XML message.")
    subject_areas: dict[str, str] = Field(
        {"ANCC_CH": "GENERAL", "ANCC_PHARM": "PHARMACOLOGY"},
        description="Credit type → CE Broker subject-area code (partial credit); other credit types are not sent.",
    )

    def secret(self) -> str:
        return _secret(self.upload_key_env, self.upload_key, f"registry {self.name} upload key")


class EmployerHrConfig(RegistryBaseConfig):
    kind: Literal["employer_hr"] = "employer_hr"
    # A repair sends a withdrawal and the credit per record, and the endpoint takes 500 events per request.
    batch_size: int = Field(100, ge=1, le=250, description="Credit records per webhook call.")
    hmac_secret: str = ""
    hmac_secret_env: str | None = None
    roster_path: Path = Field(SAMPLE_DIR / "hr_roster.csv", description="employee_id,npi,licence_number,licence_state")
    export_dir: Path | None = Field(None, description="Where the nightly CSV export files go; unset = no export.")
    at_risk_notices: bool = Field(
        False, description="Send the nightly at-risk compliance list of the roster's staff as signed notices."
    )

    def secret(self) -> str:
        return _secret(self.hmac_secret_env, self.hmac_secret, f"registry {self.name} HMAC secret")


RegistryConfig = Annotated[AmaRegistryConfig | CeBrokerRegistryConfig | EmployerHrConfig, Field(discriminator="kind")]


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
