"""Builds connectors and codecs from `Settings`; each connector kind's config model builds its connector."""

from __future__ import annotations

from connectors.config import Wiring
from connectors.http import HttpClient
from connectors.registries.base import Registry
from connectors.schema_registry import SchemaRegistryClient
from connectors.sources.base import Source
from pipeline.config import RegistryConfig, Settings, SourceConfig
from pipeline.kafka.topics import topic_of
from pipeline.metrics import RegistryHttpMetrics
from pipeline.stages.faults import crash_point
from schemas.codec import AvroCodec, subject_for

# The hooks connectors are built with: the fault suite's crash points and the registries' HTTP metrics.
WIRING = Wiring(crash_point=crash_point, registry_observer=RegistryHttpMetrics)


def build_sources(settings: Settings) -> list[Source]:
    return [build_source(config) for config in settings.sources]


def build_source(config: SourceConfig) -> Source:
    return config.build(WIRING)


def build_registries(settings: Settings) -> list[Registry]:
    return [build_registry(config) for config in settings.registries]


def build_registry(config: RegistryConfig) -> Registry:
    return config.build(WIRING)


def codec_for(settings: Settings, schema_name: str) -> AvroCodec:
    registry = SchemaRegistryClient(HttpClient(settings.schema_registry_url))
    return AvroCodec(schema_name, registry, subject_for(topic_of(schema_name).name))
