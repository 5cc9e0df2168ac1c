"""One vocabulary (reconcile/vocabulary.py): the README's reason-code table lists exactly the enum's codes, the
credit statuses are the CreditRecord schema's, and no module spells a code or status as its own literal."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from pipeline.ops.reason_codes import KNOWN_REASON_CODES
from reconcile.vocabulary import CreditStatus, DeliveryState, ReasonCode

ROOT = Path(__file__).resolve().parents[2]
# Our code; deploy/sandbox/ is left out: the sandboxes stand in for the registries and speak their language.
CODE_PACKAGES = ("bench", "connectors", "flows", "ledger", "pipeline", "reconcile", "schemas")
STAGES = {"normalise", "reconcile", "deliver"}


def reason_code_table() -> list[tuple[str, set[str]]]:
    """(code, stages) per row of the table under the README's "Dead-letter reason codes" heading."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("#### Dead-letter reason codes\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("#"):
            break
        if match := re.match(r"\| `([A-Z_]+)` \| ([a-z, ]+) \|", line):
            rows.append((match[1], {stage.strip() for stage in match[2].split(",")}))
    return rows


def test_given_the_readme_when_its_reason_code_table_is_read_then_it_lists_every_code_once() -> None:
    codes = [code for code, _ in reason_code_table()]
    assert sorted(codes) == sorted(ReasonCode)
    assert len(codes) == len(set(codes))


def test_given_the_readme_table_when_its_stages_are_read_then_each_is_a_dead_letter_stage() -> None:
    dead_letter = json.loads((ROOT / "schemas" / "dead_letter.avsc").read_text(encoding="utf-8"))
    stage_field = next(f for f in dead_letter["fields"] if f["name"] == "stage")
    assert set(stage_field["type"]["symbols"]) == STAGES
    assert all(stages and stages <= STAGES for _, stages in reason_code_table())


def test_given_the_credit_record_schema_when_compared_then_its_statuses_are_the_enums() -> None:
    credit = json.loads((ROOT / "schemas" / "credit_record.avsc").read_text(encoding="utf-8"))
    status = next(f for f in credit["fields"] if f["name"] == "status")
    assert status["type"]["symbols"] == list(CreditStatus)


def test_given_the_vocabulary_when_members_are_read_then_each_code_is_its_own_name() -> None:
    # A reason code or status is stored and filtered by its text: the name and the text never differ.
    assert all(member.value == member.name for member in (*ReasonCode, *CreditStatus))
    assert all(state.value == state.name.lower() for state in DeliveryState)
    assert frozenset(ReasonCode) == KNOWN_REASON_CODES


def test_given_the_code_when_scanned_then_no_module_but_the_vocabulary_spells_a_code_or_status() -> None:
    words = {*ReasonCode, *CreditStatus}
    vocabulary = ROOT / "reconcile" / "vocabulary.py"
    spelt = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value}"
        for package in CODE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != vocabulary
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words
    ]
    assert spelt == []
