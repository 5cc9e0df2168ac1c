"""The sandbox Schema Registry over real HTTP, with raw requests and with confluent_kafka's own client."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from deploy.sandbox.schema_registry import CONTENT_TYPE, SchemaRegistrySandbox
from schemas.codec import schema_text

authlib_deprecate = pytest.importorskip("authlib.deprecate")
with warnings.catch_warnings():
    # authlib forces an "always" filter for its own import-time warning; only a later filter silences it.
    warnings.simplefilter("ignore", authlib_deprecate.AuthlibDeprecationWarning)
    confluent_sr = pytest.importorskip("confluent_kafka.schema_registry")

CREDIT = schema_text("credit_record")


@pytest.fixture
def sandbox() -> Iterator[SchemaRegistrySandbox]:
    server = SchemaRegistrySandbox()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _register(sandbox: SchemaRegistrySandbox, subject: str, schema: str | dict[str, Any]) -> requests.Response:
    text = schema if isinstance(schema, str) else json.dumps(schema)
    return requests.post(f"{sandbox.url}/subjects/{subject}/versions", json={"schema": text, "schemaType": "AVRO"},
                         headers={"Content-Type": CONTENT_TYPE}, timeout=5)


def _get(sandbox: SchemaRegistrySandbox, path: str) -> requests.Response:
    return requests.get(f"{sandbox.url}{path}", timeout=5)


def _evolved() -> dict[str, Any]:
    schema = json.loads(CREDIT)
    schema["fields"].append({"name": "cycle", "type": ["null", "string"], "default": None})
    return schema


def test_given_a_schema_when_registered_under_two_subjects_then_both_share_one_global_id(
    sandbox: SchemaRegistrySandbox,
) -> None:
    first = _register(sandbox, "cme.credits.v1-value", CREDIT)
    second = _register(sandbox, "other-value", json.dumps(json.loads(CREDIT)))  # same schema, other whitespace

    assert first.status_code == 200 and first.json() == {"id": 1}
    assert first.headers["Content-Type"] == CONTENT_TYPE
    assert second.json() == {"id": 1}


def test_given_a_registered_schema_when_registered_again_then_the_id_is_returned_without_a_new_version(
    sandbox: SchemaRegistrySandbox,
) -> None:
    _register(sandbox, "s-value", CREDIT)

    again = _register(sandbox, "s-value", CREDIT)

    assert again.json() == {"id": 1}
    assert _get(sandbox, "/subjects/s-value/versions").json() == [1]


def test_given_a_compatible_new_schema_when_registered_then_it_becomes_the_latest_version(
    sandbox: SchemaRegistrySandbox,
) -> None:
    _register(sandbox, "s-value", CREDIT)

    assert _register(sandbox, "s-value", _evolved()).json() == {"id": 2}
    assert _get(sandbox, "/subjects/s-value/versions").json() == [1, 2]
    latest = _get(sandbox, "/subjects/s-value/versions/latest").json()
    assert {k: latest[k] for k in ("subject", "version", "id")} == {"subject": "s-value", "version": 2, "id": 2}
    assert json.loads(latest["schema"]) == _evolved()
    assert _get(sandbox, "/subjects/s-value/versions/1").json()["id"] == 1
    assert _get(sandbox, "/subjects").json() == ["s-value"]


def test_given_an_incompatible_schema_when_registered_then_409_and_no_new_version(
    sandbox: SchemaRegistrySandbox,
) -> None:
    _register(sandbox, "s-value", CREDIT)
    broken = copy.deepcopy(json.loads(CREDIT))
    broken["fields"].append({"name": "cycle", "type": "string"})

    reply = _register(sandbox, "s-value", broken)

    assert reply.status_code == 409 and reply.json()["error_code"] == 409
    assert "CreditRecord.cycle" in reply.json()["message"]
    assert _get(sandbox, "/subjects/s-value/versions").json() == [1]


@pytest.mark.sandbox
def test_given_compatibility_none_when_an_incompatible_schema_is_registered_then_it_is_accepted() -> None:
    with SchemaRegistrySandbox(compatibility="NONE") as sandbox:
        _register(sandbox, "s-value", CREDIT)
        broken = json.loads(CREDIT)
        broken["fields"].append({"name": "cycle", "type": "string"})

        assert _register(sandbox, "s-value", broken).json() == {"id": 2}


@pytest.mark.parametrize(
    "body",
    [{"schema": "{not json"}, {"schema": json.dumps({"type": "record", "name": "R", "fields": [{"name": "x"}]})},
     {"nothing": 1}, {"schema": CREDIT, "schemaType": "PROTOBUF"}],
)
def test_given_an_invalid_registration_when_posted_then_422_with_error_code_42201(
    sandbox: SchemaRegistrySandbox, body: dict[str, Any]
) -> None:
    reply = requests.post(f"{sandbox.url}/subjects/s-value/versions", json=body, timeout=5)

    assert reply.status_code == 422 and reply.json()["error_code"] == 42201


def test_given_ids_when_fetched_then_known_ids_return_the_schema_and_unknown_ids_404_40403(
    sandbox: SchemaRegistrySandbox,
) -> None:
    _register(sandbox, "s-value", CREDIT)

    known = _get(sandbox, "/schemas/ids/1?subject=s-value&format=resolved")
    unknown = _get(sandbox, "/schemas/ids/7")

    assert known.status_code == 200 and json.loads(known.json()["schema"]) == json.loads(CREDIT)
    assert unknown.status_code == 404 and unknown.json()["error_code"] == 40403


def test_given_a_lookup_when_posted_then_registered_schemas_are_found_and_others_are_404(
    sandbox: SchemaRegistrySandbox,
) -> None:
    _register(sandbox, "s-value", CREDIT)

    def lookup(subject: str, schema: Any) -> requests.Response:
        return requests.post(f"{sandbox.url}/subjects/{subject}?normalize=False&deleted=False",
                             json={"schema": json.dumps(schema) if isinstance(schema, dict) else schema}, timeout=5)

    found = lookup("s-value", CREDIT)
    assert found.status_code == 200
    assert {k: found.json()[k] for k in ("subject", "id", "version")} == {"subject": "s-value", "id": 1, "version": 1}
    assert lookup("s-value", _evolved()).json()["error_code"] == 40403
    assert lookup("nobody-value", CREDIT).json()["error_code"] == 40401


def test_given_versions_that_do_not_exist_when_fetched_then_404_or_422(sandbox: SchemaRegistrySandbox) -> None:
    _register(sandbox, "s-value", CREDIT)

    assert _get(sandbox, "/subjects/s-value/versions/9").json()["error_code"] == 40402
    assert _get(sandbox, "/subjects/s-value/versions/first").status_code == 422
    assert _get(sandbox, "/subjects/nobody-value/versions/latest").json()["error_code"] == 40401
    assert _get(sandbox, "/subjects/nobody-value/versions").status_code == 404


def test_given_confluents_client_when_it_registers_and_reads_then_every_call_works(
    sandbox: SchemaRegistrySandbox,
) -> None:
    client = confluent_sr.SchemaRegistryClient({"url": sandbox.url})
    schema = confluent_sr.Schema(CREDIT, "AVRO")

    schema_id = client.register_schema("cme.credits.v1-value", schema)
    fetched = confluent_sr.SchemaRegistryClient({"url": sandbox.url}).get_schema(schema_id)
    looked_up = client.lookup_schema("cme.credits.v1-value", schema)
    latest = client.get_latest_version("cme.credits.v1-value")
    version = client.get_version("cme.credits.v1-value", 1)

    assert schema_id == 1
    assert fetched.schema_type == "AVRO" and json.loads(fetched.schema_str) == json.loads(CREDIT)
    assert (looked_up.schema_id, looked_up.version) == (1, 1)
    assert (latest.schema_id, latest.version, latest.subject) == (1, 1, "cme.credits.v1-value")
    assert version.schema_id == 1
    assert client.get_subjects() == ["cme.credits.v1-value"]
    assert client.get_versions("cme.credits.v1-value") == [1]


def test_given_confluents_client_when_a_schema_is_unknown_then_it_raises_its_not_found_error(
    sandbox: SchemaRegistrySandbox,
) -> None:
    client = confluent_sr.SchemaRegistryClient({"url": sandbox.url})

    with pytest.raises(confluent_sr.error.SchemaRegistryError) as caught:
        client.get_schema(42)

    assert caught.value.http_status_code == 404 and caught.value.error_code == 40403
