"""BACKWARD compatibility: the guard over schemas/history/, and the rules the checker must catch."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import SCHEMA_DIR, SCHEMA_NAMES, schema_text
from schemas.compat import check_backward, check_backward_transitive

HISTORY = SCHEMA_DIR / "history"


def _history(name: str) -> list[Path]:
    """Earlier versions of `name`, oldest first (file names `<name>.v<N>.avsc`)."""
    return sorted(HISTORY.glob(f"{name}.v*.avsc"), key=lambda p: int(p.name.split(".v")[-1].split(".")[0]))


def _current(name: str) -> dict[str, Any]:
    return json.loads(schema_text(name))


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_given_each_current_schema_when_checked_against_all_its_history_then_it_is_backward_transitive(
    name: str,
) -> None:
    olds = [json.loads(p.read_text()) for p in _history(name)]

    assert olds, f"schemas/history/ keeps no earlier version of {name}"
    assert check_backward_transitive(_current(name), olds) == []


def test_given_the_history_folder_when_listed_then_every_file_belongs_to_a_known_schema() -> None:
    names = {p.name.split(".v")[0] for p in HISTORY.glob("*.avsc")}

    assert names <= set(SCHEMA_NAMES)


def _credit() -> dict[str, Any]:
    return copy.deepcopy(_current("credit_record"))


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_given_a_new_field_without_default_when_checked_then_old_data_cannot_be_read() -> None:
    new = _credit()
    new["fields"].append({"name": "cycle", "type": "string"})

    assert check_backward(new, _credit()) == [
        "CreditRecord.cycle: reader field is missing from the writer and has no default"
    ]


def test_given_a_default_removed_later_when_checked_transitively_then_only_the_oldest_version_breaks() -> None:
    v1 = _credit()
    v2 = _credit()
    v2["fields"].append({"name": "cycle", "type": ["null", "string"], "default": None})
    v3 = copy.deepcopy(v2)
    del _field(v3, "cycle")["default"]

    assert check_backward(v2, v1) == []
    assert check_backward(v3, v2) == []
    assert check_backward_transitive(v3, [v1, v2]) == [
        "against version 1: CreditRecord.cycle: reader field is missing from the writer and has no default"
    ]


def test_given_a_changed_field_type_when_checked_then_it_is_reported_with_its_path() -> None:
    new = _credit()
    _field(new, "version")["type"] = "string"
    learner = _field(new, "learner")["type"]
    _field(learner, "npi")["type"] = ["null", "long"]

    assert check_backward(new, _credit()) == [
        "CreditRecord.version: writer type int cannot be read as string",
        "CreditRecord.learner.npi: reader union has no branch for writer type string",
    ]


def test_given_a_removed_enum_symbol_when_checked_then_it_is_reported_unless_the_reader_has_a_default() -> None:
    new = _credit()
    _field(new, "status")["type"]["symbols"] = ["AWARDED"]

    assert check_backward(new, _credit()) == ["CreditRecord.status: enum CreditStatus lacks writer symbol(s) REVOKED"]
    _field(new, "status")["type"]["default"] = "AWARDED"
    assert check_backward(new, _credit()) == []


def test_given_an_added_enum_symbol_when_checked_then_old_data_still_reads() -> None:
    new = _credit()
    _field(new, "status")["type"]["symbols"].append("SUPERSEDED")

    assert check_backward(new, _credit()) == []
    assert check_backward(_credit(), new) == [
        "CreditRecord.status: enum CreditStatus lacks writer symbol(s) SUPERSEDED"
    ]


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True), ("int", "double", True), ("long", "float", True), ("float", "double", True),
        ("string", "bytes", True), ("bytes", "string", True),
        ("long", "int", False), ("double", "float", False), ("string", "int", False), ("boolean", "int", False),
    ],
)
def test_given_a_primitive_change_when_checked_then_only_avro_promotions_pass(
    writer: str, reader: str, ok: bool
) -> None:
    def schema(kind: str) -> dict[str, Any]:
        return {"type": "record", "name": "R", "fields": [{"name": "x", "type": kind}]}

    assert (check_backward(schema(reader), schema(writer)) == []) is ok


def test_given_unions_when_checked_then_every_writer_branch_must_be_readable() -> None:
    def schema(kind: Any) -> dict[str, Any]:
        field = {"name": "x", "type": kind, **({"default": None} if isinstance(kind, list) else {})}
        return {"type": "record", "name": "R", "fields": [field]}

    assert check_backward(schema(["null", "string"]), schema("string")) == []
    assert check_backward(schema(["null", "double"]), schema(["null", "int"])) == []
    assert check_backward(schema("string"), schema(["null", "string"])) == [
        "R.x: writer type null cannot be read as string"
    ]


def test_given_renames_with_aliases_when_checked_then_they_resolve() -> None:
    old = {"type": "record", "name": "Old", "namespace": "a", "fields": [{"name": "n", "type": "int"}]}
    renamed = {"type": "record", "name": "New", "namespace": "a", "aliases": ["Old"],
               "fields": [{"name": "m", "aliases": ["n"], "type": "long"}]}
    moved = {"type": "record", "name": "Old", "namespace": "b", "fields": [{"name": "n", "type": "int"}]}
    unaliased = {"type": "record", "name": "New", "namespace": "a", "fields": [{"name": "n", "type": "int"}]}

    assert check_backward(renamed, old) == []
    assert check_backward(moved, old) == []
    assert check_backward(unaliased, old) == ["New: writer type record Old cannot be read as record New"]


def test_given_nested_arrays_maps_and_fixed_when_checked_then_problems_carry_their_path() -> None:
    def schema(item: str, size: int) -> dict[str, Any]:
        return {"type": "record", "name": "R", "fields": [
            {"name": "xs", "type": {"type": "array", "items": {"type": "map", "values": item}}},
            {"name": "h", "type": {"type": "fixed", "name": "Hash", "size": size}},
        ]}

    assert check_backward(schema("long", 16), schema("int", 16)) == []
    assert check_backward(schema("int", 32), schema("string", 16)) == [
        "R.xs[][]: writer type string cannot be read as int",
        "R.h: fixed Hash size 16 cannot be read as 32",
    ]


def test_given_a_decimal_scale_change_when_checked_then_it_is_reported() -> None:
    new = _credit()
    _field(new, "amount")["type"]["scale"] = 3

    assert check_backward(new, _credit()) == ["CreditRecord.amount: decimal scale changed from 2 to 3"]


def test_given_a_recursive_schema_when_checked_then_the_check_terminates() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None},
    ]}
    wider = copy.deepcopy(node)
    wider["fields"][0]["type"] = "long"

    assert check_backward(wider, node) == []
    assert check_backward(node, wider) == ["Node.value: writer type long cannot be read as int"]


def test_given_a_schema_that_does_not_parse_when_checked_then_that_is_the_problem() -> None:
    problems = check_backward({"type": "record", "name": "R", "fields": [{"name": "x", "type": "nope"}]}, _credit())

    assert len(problems) == 1 and problems[0].startswith("schema does not parse")
