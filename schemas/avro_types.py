"""A resolved view of a parsed Avro schema: every node as a `Node` with its kind, named types dereferenced.

fastavro's `parse_schema` already qualifies names with their namespace; this module only walks its output so
the encoder compiler, the bad-input explainer and the compatibility checker agree on what a node means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed"})
_KINDS = PRIMITIVES | NAMED | {"array", "map"}
# Logical types named in messages, with the underlying type each must annotate (decimal is described apart).
LOGICAL_LABELS = {"date": "int", "timestamp-millis": "long", "timestamp-micros": "long", "uuid": "string"}


@dataclass(frozen=True)
class Node:
    """One schema node: `kind` is a primitive name, record, enum, fixed, array, map or union."""

    kind: str
    raw: Any
    logical: str | None = None

    @property
    def name(self) -> str:
        """Full name of a named type, else the kind."""
        return self.raw["name"] if self.kind in NAMED else self.kind

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else ""


class Schema:
    """A parsed schema plus its table of named types, so that references resolve to their definitions."""

    def __init__(self, schema: Any) -> None:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            schema = json.loads(schema)
        self.parsed = parse_schema(schema)
        self.names: dict[str, Any] = {}
        self._collect(self.parsed)

    @property
    def root(self) -> Node:
        return self.node(self.parsed)

    def node(self, raw: Any) -> Node:
        if isinstance(raw, str):
            return Node(raw, raw) if raw in PRIMITIVES else self.node(self.names[raw])
        if isinstance(raw, list):
            return Node("union", raw)
        kind = raw["type"]
        if not isinstance(kind, str) or kind not in _KINDS:
            return self.node(kind)
        return Node(kind, raw, raw.get("logicalType"))

    def branches(self, union: Node) -> list[Node]:
        return [self.node(branch) for branch in union.raw]

    def fields(self, record: Node) -> list[tuple[dict[str, Any], Node]]:
        return [(f, self.node(f["type"])) for f in record.raw["fields"]]

    def items(self, node: Node) -> Node:
        return self.node(node.raw["items"] if node.kind == "array" else node.raw["values"])

    def _collect(self, raw: Any) -> None:
        if isinstance(raw, list):
            for branch in raw:
                self._collect(branch)
        elif isinstance(raw, dict):
            kind = raw.get("type")
            if kind in NAMED:
                self.names.setdefault(raw["name"], raw)
            if kind == "record":
                for field in raw["fields"]:
                    self._collect(field["type"])
            elif kind == "array":
                self._collect(raw["items"])
            elif kind == "map":
                self._collect(raw["values"])
            elif isinstance(kind, (dict, list)):
                self._collect(kind)


def describe(node: Node) -> str:
    """A short type label for messages: `string`, `decimal(8,2)`, `date`, `record Licence`, `enum CreditStatus`."""
    if node.logical == "decimal":
        return f"decimal({node.raw.get('precision')},{node.raw.get('scale', 0)})"
    if node.logical in LOGICAL_LABELS and node.kind == LOGICAL_LABELS[node.logical]:
        return node.logical
    if node.kind in NAMED:
        return f"{node.kind} {node.short_name}"
    return node.kind
