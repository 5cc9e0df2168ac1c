"""BACKWARD compatibility: can data written with an older (writer) schema be read with a newer (reader) one?

Structural check following the Avro specification's schema-resolution rules, as Confluent's registry applies
them: named types match by unqualified name or by a reader alias naming the writer's full name; a reader field
absent from the writer needs a default; numeric promotions int→long→float→double and string↔bytes; a writer
enum symbol unknown to the reader needs a reader enum default; every writer union branch must be readable.
Logical types resolve as their underlying type, except that a decimal scale change is reported, since the
same bytes would then read as a different amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.avro_types import NAMED, Node, Schema, describe

PROMOTIONS = frozenset({
    ("int", "long"), ("int", "float"), ("int", "double"),
    ("long", "float"), ("long", "double"),
    ("float", "double"),
    ("string", "bytes"), ("bytes", "string"),
})  # (writer, reader)


def check_backward(reader_schema: Any, writer_schema: Any) -> list[str]:
    """Human-readable reasons why `writer_schema` data cannot be read with `reader_schema`; empty if it can."""
    try:
        reader, writer = Schema(reader_schema), Schema(writer_schema)
    except Exception as exc:
        return [f"schema does not parse: {exc}"]
    resolution = _Resolution(reader, writer)
    root = reader.root
    resolution.check(root, writer.root, root.short_name if root.kind in NAMED else root.kind)
    return resolution.problems


def check_backward_transitive(new: Any, olds: Sequence[Any]) -> list[str]:
    """`check_backward` of `new` against every earlier version; messages say which (1 = oldest given)."""
    return [f"against version {i}: {problem}" for i, old in enumerate(olds, 1) for problem in check_backward(new, old)]


class _Resolution:
    def __init__(self, reader: Schema, writer: Schema) -> None:
        self.reader = reader
        self.writer = writer
        self.problems: list[str] = []
        self._records_seen: set[tuple[str, str]] = set()

    def check(self, r: Node, w: Node, path: str) -> None:
        if w.kind == "union":
            for branch in self.writer.branches(w):
                self._check_one(r, branch, path)
            return
        self._check_one(r, w, path)

    def _check_one(self, r: Node, w: Node, path: str) -> None:
        if r.kind == "union":
            match = self._branch_for(r, w)
            if match is None:
                self.problems.append(f"{path}: reader union has no branch for writer type {describe(w)}")
                return
            r = match
        if not self._matches(r, w):
            self.problems.append(f"{path}: writer type {describe(w)} cannot be read as {describe(r)}")
            return
        if r.kind == "record":
            self._record(r, w, path)
        elif r.kind == "enum":
            self._enum(r, w, path)
        elif r.kind == "fixed" and r.raw["size"] != w.raw["size"]:
            sizes = f"size {w.raw['size']} cannot be read as {r.raw['size']}"
            self.problems.append(f"{path}: fixed {r.short_name} {sizes}")
        elif r.kind in ("array", "map"):
            self.check(self.reader.items(r), self.writer.items(w), f"{path}[]")
        elif r.logical == "decimal" and w.logical == "decimal":
            old, new = w.raw.get("scale", 0), r.raw.get("scale", 0)
            if old != new:
                self.problems.append(f"{path}: decimal scale changed from {old} to {new}")

    def _record(self, r: Node, w: Node, path: str) -> None:
        key = (r.name, w.name)
        if key in self._records_seen:
            return
        self._records_seen.add(key)
        writer_fields = {f["name"]: node for f, node in self.writer.fields(w)}
        for field, node in self.reader.fields(r):
            name = field["name"]
            candidates = [name, *field.get("aliases", [])]
            found = next((writer_fields[c] for c in candidates if c in writer_fields), None)
            if found is not None:
                self.check(node, found, f"{path}.{name}")
            elif "default" not in field:
                self.problems.append(f"{path}.{name}: reader field is missing from the writer and has no default")

    def _enum(self, r: Node, w: Node, path: str) -> None:
        known = set(r.raw["symbols"])
        missing = [s for s in w.raw["symbols"] if s not in known]
        if missing and "default" not in r.raw:
            self.problems.append(f"{path}: enum {r.short_name} lacks writer symbol(s) {', '.join(missing)}")

    def _branch_for(self, union: Node, w: Node) -> Node | None:
        branches = self.reader.branches(union)
        exact = [b for b in branches if b.kind == w.kind and self._matches(b, w)]
        if exact:
            return exact[0]
        return next((b for b in branches if self._matches(b, w)), None)

    @staticmethod
    def _matches(r: Node, w: Node) -> bool:
        if r.kind != w.kind:
            return (w.kind, r.kind) in PROMOTIONS
        if r.kind not in NAMED:
            return True
        if r.short_name == w.short_name:
            return True
        namespace = r.namespace
        aliases = {a if "." in a or not namespace else f"{namespace}.{a}" for a in r.raw.get("aliases", [])}
        return w.name in aliases
