"""A Confluent Schema Registry subset, enough for our codec and for confluent_kafka's SchemaRegistryClient.

Endpoints: POST /subjects/{s}/versions (register), POST /subjects/{s} (lookup), GET /schemas/ids/{id},
GET /schemas/types, GET /subjects, GET /subjects/{s}/versions, GET /subjects/{s}/versions/{n|latest}.
Ids are global: the same schema (compared as parsed JSON) gets the same id under every subject. Registering
checks compatibility with the subject's earlier versions, BACKWARD by default, as Confluent's default does.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from fastavro import parse_schema

from deploy.sandbox.base import Request, Response, SandboxServer
from schemas.compat import check_backward

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY_LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE")

SUBJECT = r"/subjects/(?P<subject>[^/]+)"


@dataclass
class _Subject:
    ids: list[int] = field(default_factory=list)  # index = version - 1


class SchemaRegistrySandbox(SandboxServer):
    name = "schema-registry"

    def __init__(self, port: int = 0, compatibility: str = "BACKWARD") -> None:
        super().__init__(port)
        if compatibility not in COMPATIBILITY_LEVELS:
            raise ValueError(f"compatibility must be one of {COMPATIBILITY_LEVELS}")
        self.compatibility = compatibility
        self._lock = threading.Lock()
        self._schemas: list[str] = []  # index = id - 1; compact JSON as first registered
        self._ids_by_canonical: dict[str, int] = {}
        self._subjects: dict[str, _Subject] = {}
        self.route("POST", rf"{SUBJECT}/versions", self._register)
        self.route("POST", SUBJECT, self._lookup)
        self.route("GET", r"/schemas/ids/(?P<id>\d+)", self._schema_by_id)
        self.route("GET", r"/schemas/types", lambda _: _ok(["AVRO"]))
        self.route("GET", r"/subjects", self._list_subjects)
        self.route("GET", rf"{SUBJECT}/versions", self._list_versions)
        self.route("GET", rf"{SUBJECT}/versions/(?P<version>[^/]+)", self._version)

    def _register(self, request: Request) -> Response:
        subject = unquote(request.match["subject"])
        schema, canonical, problem = _parse_body(request)
        if problem:
            return problem
        with self._lock:
            known = self._subjects.get(subject)
            schema_id = self._ids_by_canonical.get(canonical)
            if known and schema_id in known.ids:
                return _ok({"id": schema_id})
            if known and (problems := self._incompatibilities(schema, known)):
                message = "Schema being registered is incompatible with an earlier schema; " + "; ".join(problems)
                return _error(409, 409, message)
            if schema_id is None:
                self._schemas.append(json.dumps(schema))
                schema_id = len(self._schemas)
                self._ids_by_canonical[canonical] = schema_id
            self._subjects.setdefault(subject, _Subject()).ids.append(schema_id)
        return _ok({"id": schema_id})

    def _lookup(self, request: Request) -> Response:
        subject = unquote(request.match["subject"])
        _, canonical, problem = _parse_body(request)
        if problem:
            return problem
        with self._lock:
            known = self._subjects.get(subject)
            if known is None:
                return _error(404, 40401, f"Subject '{subject}' not found.")
            schema_id = self._ids_by_canonical.get(canonical)
            if schema_id not in known.ids:
                return _error(404, 40403, "Schema not found")
            return _ok(self._version_body(subject, known.ids.index(schema_id) + 1, schema_id))

    def _schema_by_id(self, request: Request) -> Response:
        schema_id = int(request.match["id"])
        with self._lock:
            if not 1 <= schema_id <= len(self._schemas):
                return _error(404, 40403, "Schema not found")
            return _ok({"schema": self._schemas[schema_id - 1]})

    def _list_subjects(self, request: Request) -> Response:
        with self._lock:
            return _ok(sorted(self._subjects))

    def _list_versions(self, request: Request) -> Response:
        subject = unquote(request.match["subject"])
        with self._lock:
            known = self._subjects.get(subject)
            if known is None:
                return _error(404, 40401, f"Subject '{subject}' not found.")
            return _ok(list(range(1, len(known.ids) + 1)))

    def _version(self, request: Request) -> Response:
        subject = unquote(request.match["subject"])
        wanted = request.match["version"]
        with self._lock:
            known = self._subjects.get(subject)
            if known is None:
                return _error(404, 40401, f"Subject '{subject}' not found.")
            if wanted in ("latest", "-1"):
                version = len(known.ids)
            elif wanted.isdigit():
                version = int(wanted)
            else:
                return _error(422, 42202, "The specified version is not a valid version id.")
            if not 1 <= version <= len(known.ids):
                return _error(404, 40402, f"Version {wanted} not found.")
            return _ok(self._version_body(subject, version, known.ids[version - 1]))

    def _version_body(self, subject: str, version: int, schema_id: int) -> dict[str, Any]:
        return {"subject": subject, "version": version, "id": schema_id, "schema": self._schemas[schema_id - 1]}

    def _incompatibilities(self, schema: Any, known: _Subject) -> list[str]:
        if self.compatibility == "NONE":
            return []
        earlier = known.ids if self.compatibility == "BACKWARD_TRANSITIVE" else known.ids[-1:]
        problems: list[str] = []
        for schema_id in earlier:
            problems += check_backward(schema, json.loads(self._schemas[schema_id - 1]))
        return problems


def _parse_body(request: Request) -> tuple[Any, str, Response | None]:
    """(parsed schema, canonical text, error response or None) from a register/lookup body."""
    try:
        body = request.json()
        text = body["schema"]
        schema = json.loads(text)
    except (ValueError, KeyError, TypeError):
        return None, "", _error(422, 42201, "Invalid schema: body needs a 'schema' string holding JSON")
    if body.get("schemaType", "AVRO") != "AVRO":
        return None, "", _error(422, 42201, "Invalid schema: only AVRO is supported by this sandbox")
    if body.get("references"):
        return None, "", _error(422, 42201, "Invalid schema: references are not supported by this sandbox")
    try:
        parse_schema(schema)
    except Exception as exc:
        return None, "", _error(422, 42201, f"Invalid schema: {exc}")
    return schema, json.dumps(schema, sort_keys=True, separators=(",", ":")), None


def _ok(body: Any) -> Response:
    return Response(200, body, content_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> Response:
    return Response(status, {"error_code": code, "message": message}, content_type=CONTENT_TYPE)
