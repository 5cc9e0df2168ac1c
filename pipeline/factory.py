"""Builds connectors and codecs from `Settings`: the one place that knows which class serves which kind."""

from __future__ import annotations

from connectors.http import HttpClient
from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.base import Registry
from connectors.sources.base import Source
from connectors.sources.xapi import XapiSource
from deploy.broker import ATTENDANCE_TOPIC, CREDITS_TOPIC, DEADLETTER_TOPIC
from pipeline.config import Settings
from schemas.codec import AvroCodec, SchemaRegistryClient, subject_for

TOPIC_OF = {"attendance_event": ATTENDANCE_TOPIC, "credit_record": CREDITS_TOPIC, "dead_letter": DEADLETTER_TOPIC}


def build_sources(settings: Settings) -> list[Source]:
    return [
        XapiSource(
            config.name,
            HttpClient(config.base_url, auth=(config.username, config.secret())),
            page_size=config.page_size,
            extension_prefix=config.context_extension_prefix,
        )
        for config in settings.sources
    ]


def build_registries(settings: Settings) -> list[Registry]:
    return [
        AmaPraRegistry(config.name, HttpClient(config.base_url, headers={"Authorization": f"Bearer {config.secret()}"}))
        for config in settings.registries
    ]


def codec_for(settings: Settings, schema_name: str) -> AvroCodec:
    registry = SchemaRegistryClient(HttpClient(settings.schema_registry_url))
    return AvroCodec(schema_name, registry, subject_for(TOPIC_OF[schema_name]))
