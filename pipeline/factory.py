"""Builds connectors and codecs from `Settings`: the one place that knows which class serves which kind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname
from zoneinfo import ZoneInfo

from connectors.http import HttpClient, RateLimiter, RetryPolicy
from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.base import Registry
from connectors.registries.cebroker import CeBrokerRegistry
from connectors.registries.cebroker_xml import Envelope
from connectors.registries.employer_hr import CsvExport, EmployerHrRegistry, HmacSigner, Roster, RosterError
from connectors.registries.reporting_year import YearClose
from connectors.schema_registry import SchemaRegistryClient
from connectors.sources.base import Source
from connectors.sources.csv_drop import CsvDropSource, DirectoryDrop, DropLocation, HttpDrop
from connectors.sources.http_source import NextToken, PageNumber, Pagination
from connectors.sources.mapping import DEFAULT_TIME_FORMATS, FieldMapping
from connectors.sources.provider_rest import ProviderRestSource
from connectors.sources.webinar import WebinarSource
from connectors.sources.xapi import XapiSource
from pipeline.config import (
    AmaRegistryConfig,
    CeBrokerRegistryConfig,
    ConfigError,
    CsvDropSourceConfig,
    RegistryConfig,
    Settings,
    SourceConfig,
    WebinarSourceConfig,
    XapiSourceConfig,
)
from pipeline.kafka.topics import topic_of
from pipeline.metrics import RegistryHttpMetrics
from pipeline.stages.faults import crash_point
from schemas.codec import AvroCodec, subject_for


def build_sources(settings: Settings) -> list[Source]:
    return [build_source(config) for config in settings.sources]


def build_source(config: SourceConfig) -> Source:
    def client(bearer: str | None = None, **kwargs: Any) -> HttpClient:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        retry = RetryPolicy(max_attempts=config.max_attempts)
        return HttpClient(config.base_url, retry=retry, headers=headers, tls=config.tls_settings(), **kwargs)

    if isinstance(config, XapiSourceConfig):
        auth = {"bearer": config.secret()} if config.auth == "bearer" else {"auth": (config.username, config.secret())}
        return XapiSource(
            config.name, client(**auth), config.page_size, config.context_extension_prefix, config.account_identities
        )
    if isinstance(config, WebinarSourceConfig):
        return WebinarSource(
            config.name, client(config.bearer()), config.webinars, config.page_size, config.registrant_questions
        )
    mapping = FieldMapping(
        fields=config.fields,
        kinds=config.kinds,
        default_kind=config.default_kind,
        activities=config.activities,
        activity=config.activity,
        timezone=ZoneInfo(config.timezone),
        time_formats=tuple(config.time_formats) or DEFAULT_TIME_FORMATS,
        claimed_credit_type=config.claimed_credit_type,
    )
    if isinstance(config, CsvDropSourceConfig):
        location: DropLocation = (
            DirectoryDrop(Path(url2pathname(urlsplit(config.base_url).path)), config.pattern)
            if config.base_url.startswith("file:")
            else HttpDrop(client(config.optional_bearer()), config.pattern)
        )
        return CsvDropSource(
            config.name,
            location,
            mapping,
            page_size=config.page_size,
            fallback_encoding=config.fallback_encoding,
            delimiter=config.delimiter,
        )
    pagination: Pagination = (
        NextToken(config.next_cursor_path, config.cursor_param)
        if config.pagination == "cursor"
        else PageNumber(config.page_param, config.total_pages_path)
    )
    return ProviderRestSource(
        config.name,
        client(config.bearer()),
        mapping,
        page_size=config.page_size,
        path=config.path,
        records_path=config.records_path,
        pagination=pagination,
        page_size_param=config.page_size_param,
        since_param=config.since_param,
        updated_at_path=config.updated_at_path,
    )


def build_registries(settings: Settings) -> list[Registry]:
    return [build_registry(config) for config in settings.registries]


def build_registry(config: RegistryConfig) -> Registry:
    def client(**kwargs: Any) -> HttpClient:
        limit = RateLimiter(config.rate_limit_per_s) if config.rate_limit_per_s else None
        retry = RetryPolicy(max_attempts=config.max_attempts)
        return HttpClient(
            config.base_url,
            retry=retry,
            rate_limit=limit,
            tls=config.tls_settings(),
            observer=RegistryHttpMetrics(config.name),
            **kwargs,
        )

    if isinstance(config, AmaRegistryConfig):
        bearer = {"Authorization": f"Bearer {config.secret()}"}
        return AmaPraRegistry(
            config.name,
            client(headers=bearer),
            config.page_size,
            config.provider_organization,
            timedelta(hours=config.decision_window_hours),
            on_add_accepted=lambda: crash_point("pars.add_accepted"),
            year_close=year_close_of(config),
            decision_poll_interval=timedelta(minutes=config.decision_poll_minutes),
        )
    if isinstance(config, CeBrokerRegistryConfig):
        provider = config.provider_id or config.parent_provider_id
        return CeBrokerRegistry(
            config.name,
            client(),
            Envelope(config.parent_provider_id, provider, config.secret()),
            page_size=config.page_size,
            max_message_bytes=config.max_message_bytes,
            subject_areas=config.subject_areas,
            on_message_accepted=lambda: crash_point("cebroker.message_accepted"),
        )
    try:
        roster = Roster.load(config.roster_path)
    except RosterError as err:
        raise ConfigError(f"registry {config.name}: {err}") from None
    export = CsvExport(config.export_dir, config.name) if config.export_dir else None
    return EmployerHrRegistry(config.name, client(auth=HmacSigner(config.secret())), roster, export, config.page_size)


def year_close_of(config: AmaRegistryConfig) -> YearClose | None:
    if not config.year_close:
        return None
    try:
        return YearClose.parse(config.year_close)
    except ValueError:
        raise ConfigError(f"registry {config.name}: year_close {config.year_close} is not a day of the year") from None


def codec_for(settings: Settings, schema_name: str) -> AvroCodec:
    registry = SchemaRegistryClient(HttpClient(settings.schema_registry_url))
    return AvroCodec(schema_name, registry, subject_for(topic_of(schema_name).name))
