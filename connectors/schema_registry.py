"""A small client for a Confluent-compatible Schema Registry (Confluent, Karapace, Apicurio, Redpanda, sandbox).

It lives among the connectors (an HTTP client of an outside service); the codec in `schemas/` sees only the
`SchemaRegistry` protocol it satisfies. Only what the codec needs: register a schema under a subject, fetch a
schema by id. Both are cached; ids are immutable in every registry we target, so the caches never need
invalidating.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from connectors.http import FatalAPIError, HttpClient, RetryPolicy
from schemas.codec import SchemaNotFound

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPT = f"{CONTENT_TYPE}, application/vnd.schemaregistry+json, application/json"


class SchemaRegistryClient:
    def __init__(self, url_or_http: str | HttpClient, *, auth: Any = None, retry: RetryPolicy | None = None) -> None:
        if isinstance(url_or_http, HttpClient):
            self.http = url_or_http
        else:
            self.http = HttpClient(url_or_http, headers={"Accept": ACCEPT}, auth=auth, retry=retry)
        self._ids: dict[tuple[str, str], int] = {}
        self._texts: dict[int, str] = {}

    def register(self, subject: str, schema_text: str) -> int:
        """The global id of `schema_text` under `subject`, registering it if needed (idempotent)."""
        key = (subject, _canonical(schema_text))
        if key not in self._ids:
            reply = self.http.post_json(
                f"subjects/{quote(subject, safe='')}/versions",
                {"schema": schema_text, "schemaType": "AVRO"},
                headers={"Content-Type": CONTENT_TYPE},
            )
            schema_id = int(reply["id"])
            self._ids[key] = schema_id
            self._texts.setdefault(schema_id, schema_text)
        return self._ids[key]

    def schema_by_id(self, schema_id: int) -> str:
        """The Avro schema text registered under `schema_id`; SchemaNotFound if there is none."""
        if schema_id not in self._texts:
            try:
                reply = self.http.get_json(f"schemas/ids/{int(schema_id)}")
            except FatalAPIError as err:
                if err.status == 404:
                    raise SchemaNotFound(f"unknown schema id {schema_id}") from None
                raise
            if reply.get("schemaType", "AVRO") != "AVRO":
                raise SchemaNotFound(f"schema id {schema_id} is not an Avro schema")
            self._texts[schema_id] = reply["schema"]
        return self._texts[schema_id]


def _canonical(schema_text: str) -> str:
    return json.dumps(json.loads(schema_text), sort_keys=True, separators=(",", ":"))
