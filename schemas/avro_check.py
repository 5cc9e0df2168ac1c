"""Say why a datum does not fit a schema, naming the field path and the expected type, never the value.

Runs only after encoding failed (or on an explicit validate), so it favours clear reasons over speed. Its
acceptance rules mirror `schemas.avro_writer`; union branch selection in particular follows
`_Emitter.predicate` there.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Mapping
from typing import Any

from schemas.avro_types import Node, Schema, describe
from schemas.avro_writer import DECIMAL_CONTEXT, INT_RANGE, LONG_RANGE, TIMESTAMP_UNITS

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class Mismatch(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)


def explain(schema: Schema, datum: Any) -> str | None:
    """The first problem found as "path: expected …", or None if `datum` fits `schema`."""
    try:
        _check(schema, schema.root, datum, "")
    except Mismatch as problem:
        return str(problem)
    return None


def _is_whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def selects(node: Node, v: Any) -> bool:
    """Whether `v` selects this union branch (first match wins)."""
    kind, logical = node.kind, node.logical
    if kind == "null":
        return v is None
    if kind == "boolean":
        return isinstance(v, bool)
    if kind == "int" and logical == "date":
        return (isinstance(v, dt.date) and not isinstance(v, dt.datetime)) or _is_whole(v)
    if kind == "long" and logical in TIMESTAMP_UNITS:
        return isinstance(v, dt.datetime) or _is_whole(v)
    if kind == "int":
        return _is_whole(v) and INT_RANGE[0] <= v <= INT_RANGE[1]
    if kind == "long":
        return _is_whole(v)
    if kind in ("float", "double"):
        return isinstance(v, float) or _is_whole(v)
    if logical == "decimal" and kind in ("bytes", "fixed"):
        return isinstance(v, decimal.Decimal)
    if kind == "string":
        return isinstance(v, (str, uuid.UUID)) if logical == "uuid" else isinstance(v, str)
    if kind == "bytes":
        return isinstance(v, (bytes, bytearray, memoryview))
    if kind == "fixed":
        return isinstance(v, (bytes, bytearray, memoryview)) and len(v) == node.raw["size"]
    if kind == "enum":
        return isinstance(v, str) and v in node.raw["symbols"]
    if kind == "array":
        return isinstance(v, (list, tuple))
    return isinstance(v, Mapping)


def _union_label(branches: list[Node]) -> str:
    labels = [describe(b) for b in branches if b.kind != "null"]
    if len(labels) < len(branches):
        labels.append("null")
    return " or ".join(labels)


def _check(schema: Schema, node: Node, v: Any, path: str) -> None:
    kind, logical = node.kind, node.logical
    expected = f"expected {describe(node)}"
    if kind == "union":
        branches = schema.branches(node)
        chosen = next((b for b in branches if selects(b, v)), None)
        if chosen is None:
            raise Mismatch(path, f"expected {_union_label(branches)}")
        _check(schema, chosen, v, path)
    elif kind == "record":
        _record(schema, node, v, path)
    elif kind == "null":
        if v is not None:
            raise Mismatch(path, expected)
    elif kind == "boolean":
        if not isinstance(v, bool):
            raise Mismatch(path, expected)
    elif kind in ("int", "long"):
        _integer(node, v, path)
    elif kind in ("float", "double"):
        if not (isinstance(v, float) or _is_whole(v)):
            raise Mismatch(path, expected)
        if kind == "float" and abs(float(v)) > 3.4028234663852886e38 and abs(float(v)) != float("inf"):
            raise Mismatch(path, f"{expected} (32-bit range)")
    elif kind == "string":
        if not (isinstance(v, str) or (logical == "uuid" and isinstance(v, uuid.UUID))):
            raise Mismatch(path, expected)
        try:
            str(v).encode()
        except UnicodeEncodeError:
            raise Mismatch(path, f"{expected} (valid UTF-8)") from None
    elif logical == "decimal" and kind in ("bytes", "fixed"):
        _decimal(node, v, path)
    elif kind in ("bytes", "fixed"):
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise Mismatch(path, expected)
        if kind == "fixed" and len(v) != node.raw["size"]:
            raise Mismatch(path, f"{expected} of exactly {node.raw['size']} bytes")
    elif kind == "enum":
        if not isinstance(v, str) or v not in node.raw["symbols"]:
            raise Mismatch(path, f"expected one of {', '.join(node.raw['symbols'])}")
    elif kind == "array":
        if not isinstance(v, (list, tuple)):
            raise Mismatch(path, expected)
        items = schema.items(node)
        for i, item in enumerate(v):
            _check(schema, items, item, f"{path}[{i}]")
    elif kind == "map":
        if not isinstance(v, Mapping):
            raise Mismatch(path, expected)
        values = schema.items(node)
        for key, item in v.items():
            # Map keys are data, not names: the path never shows them.
            if not isinstance(key, str):
                raise Mismatch(path, "map keys must be strings")
            _check(schema, values, item, f"{path}[*]")


def _record(schema: Schema, node: Node, v: Any, path: str) -> None:
    if not isinstance(v, Mapping):
        raise Mismatch(path, f"expected {describe(node)}")
    fields = schema.fields(node)
    known = {f["name"] for f, _ in fields}
    unknown = [k for k in v if k not in known]
    if unknown:
        key = unknown[0]
        # A key is normally a field name; anything that does not look like one might be data, so stays unnamed.
        label = key if isinstance(key, str) and _IDENTIFIER.fullmatch(key) else "(unnamed)"
        raise Mismatch(path, f"unexpected field {label} (not in {node.short_name})")
    for field, child in fields:
        name = field["name"]
        where = f"{path}.{name}" if path else name
        if name in v:
            _check(schema, child, v[name], where)
        elif "default" not in field:
            raise Mismatch(where, f"missing required field ({describe(child)})")


def _integer(node: Node, v: Any, path: str) -> None:
    kind, logical = node.kind, node.logical
    if kind == "int" and logical == "date":
        if isinstance(v, dt.datetime) or not (isinstance(v, dt.date) or _is_whole(v)):
            raise Mismatch(path, "expected date")
        value = v.toordinal() - dt.date(1970, 1, 1).toordinal() if isinstance(v, dt.date) else v
    elif kind == "long" and logical in TIMESTAMP_UNITS:
        if isinstance(v, dt.datetime):
            if v.tzinfo is None:
                raise Mismatch(path, f"expected {logical} as a timezone-aware datetime")
            return
        if not _is_whole(v):
            raise Mismatch(path, f"expected {logical} (aware datetime or integer)")
        value = v
    else:
        if not _is_whole(v):
            raise Mismatch(path, f"expected {kind}")
        value = v
    low, high = INT_RANGE if kind == "int" else LONG_RANGE
    if not low <= value <= high:
        raise Mismatch(path, f"expected {describe(node)} ({'32' if kind == 'int' else '64'}-bit range)")


def _decimal(node: Node, v: Any, path: str) -> None:
    label = describe(node)
    if not isinstance(v, decimal.Decimal):
        raise Mismatch(path, f"expected {label}")
    if not v.is_finite():
        raise Mismatch(path, f"expected a finite {label}")
    scale, precision = node.raw.get("scale", 0), node.raw["precision"]
    try:
        scaled = v.scaleb(scale, DECIMAL_CONTEXT)
    except decimal.DecimalException:
        raise Mismatch(path, f"expected {label} (too many digits)") from None
    if scaled != int(scaled):
        raise Mismatch(path, f"expected {label} (more than {scale} decimal places)")
    if abs(int(scaled)) >= 10**precision:
        raise Mismatch(path, f"expected {label} (more than {precision} digits)")
    if node.kind == "fixed" and abs(int(scaled)).bit_length() >= 8 * node.raw["size"]:
        raise Mismatch(path, f"expected {label} (does not fit {node.raw['size']} bytes)")
