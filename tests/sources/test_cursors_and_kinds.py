"""Cursor texts are what the ledger keeps between pulls: each source kind reads the text it wrote before its
cursor became a declared model, and writes it back unchanged. And every connector kind is registered by its
own module, config model beside connector. No I/O."""

from __future__ import annotations

import pytest

from connectors.config import registry_kinds, source_kinds
from connectors.http import HttpClient
from connectors.sources.csv_drop import CsvCursor
from connectors.sources.mapping import FieldMapping
from connectors.sources.provider_rest import ProviderRestSource
from connectors.sources.streams import ChildStreamCursor
from connectors.sources.xapi import XapiSource

UNUSED = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "text",
    [
        '{"stored": "2026-11-10T08:00:00.123Z", "ids": ["a", "b"]}',
        '{"stored": "2026-11-10T08:00:00.123456Z", "ids": []}',
    ],
)
def test_given_a_saved_xapi_cursor_when_loaded_and_dumped_then_the_text_is_the_same(text: str) -> None:
    source = XapiSource("lrs", HttpClient(UNUSED))

    assert source.dump_cursor(source.load_cursor(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        '{"mark": null, "token": null, "high": null, "pages": 0}',
        '{"mark": {"at": "2026-11-10T08:07:30.000Z", "ids": ["r1", "r2"]}, "token": "c-3", '
        '"high": {"at": "2026-11-10T09:00:00.000Z", "ids": ["r9"]}, "pages": 2}',
        '{"mark": null, "token": 3, "high": {"at": "2026-11-10T09:00:00.000Z", "ids": ["7"]}, "pages": 2}',
    ],
)
def test_given_a_saved_provider_rest_cursor_when_loaded_and_dumped_then_the_text_is_the_same(text: str) -> None:
    source = ProviderRestSource("rest", HttpClient(UNUSED), FieldMapping({"event_id": "id"}, activity="A-1"))

    assert source.dump_cursor(source.load_cursor(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        '{"done": [], "at": null}',
        '{"done": ["i-1", "i-2"], "at": {"instance": "i-3", "pages": 4, "token": "t-5"}}',
    ],
)
def test_given_a_saved_webinar_cursor_when_loaded_and_dumped_then_the_text_is_the_same(text: str) -> None:
    assert ChildStreamCursor.load(text).dump() == text


@pytest.mark.parametrize(
    "text", ['{"done": [], "file": null, "line": 0}', '{"done": ["aa", "bb"], "file": "cc", "line": 41}']
)
def test_given_a_saved_csv_cursor_when_loaded_and_dumped_then_the_text_is_the_same(text: str) -> None:
    assert CsvCursor.load(text).dump() == text


def test_given_the_connector_packages_when_kinds_are_listed_then_each_module_registers_its_own_kind() -> None:
    sources = {model.model_fields["kind"].default: model.__module__ for model in source_kinds()}
    registries = {model.model_fields["kind"].default: model.__module__ for model in registry_kinds()}

    assert sources == {
        "csv_drop": "connectors.sources.csv_drop",
        "provider_rest": "connectors.sources.provider_rest",
        "webinar": "connectors.sources.webinar",
        "xapi": "connectors.sources.xapi",
    }
    assert registries == {
        "ama_pra": "connectors.registries.ama_pra",
        "cebroker": "connectors.registries.cebroker",
        "employer_hr": "connectors.registries.employer_hr",
    }
