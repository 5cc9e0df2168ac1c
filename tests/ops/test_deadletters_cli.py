"""`cmesync deadletters list|show|retry|resolve` on the dead letters a real nightly run leaves: the sample data's
statement without an actor (normalise, SCHEMA_INVALID) and completion of an activity missing from the catalog
(reconcile, UNKNOWN_ACTIVITY), plus deliveries a failing registry refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploy.sandbox.base import Faults
from pipeline.config import SAMPLE_DIR
from tests.ops.conftest import Ops

pytestmark = pytest.mark.integration

# The learner behind the UNKNOWN_ACTIVITY completion (sample data, made up): identifiers a payload holds.
UNKNOWN_ACTIVITY_NPI = "1904653825"
UNKNOWN_ACTIVITY_NAME = "Haddad"


def night(ops: Ops) -> dict[str, Any]:
    """A night's counts; exit code 1 when a delivery failed (the registry faults some tests set), else 0."""
    result = ops.cli("run", "--json")
    assert result.returncode == (1 if ops.sandboxes.ama.faults.server_error else 0), result.stderr
    counts: dict[str, Any] = result.json()
    return counts


def only(ops: Ops, *filters: str) -> dict[str, Any]:
    rows = ops.cli("deadletters", "list", *filters, "--json").json()
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


def catalog_with_act_999(directory: Path) -> Path:
    """The sample catalog plus the activity the sample's UNKNOWN_ACTIVITY completion refers to: the fix."""
    catalog = json.loads((SAMPLE_DIR / "catalog.json").read_text(encoding="utf-8"))
    template = next(a for a in catalog["activities"] if a["id"] == "ACT-001")
    catalog["activities"].append(
        {
            **template,
            "id": "ACT-999",
            "title": "Wilderness Medicine Update",
            "refs": ["https://lms.example.org/activities/ACT-999"],
            "designations": {"AMA_PRA_1": "3.00"},
        }
    )
    path = directory / "catalog.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return path


def test_given_a_reconcile_dead_letter_when_shown_then_its_position_is_printed_and_its_pii_only_on_reveal(
    ops: Ops,
) -> None:
    night(ops)
    row = only(ops, "--stage", "reconcile")
    prefix = row["dead_letter_id"][:8]

    listing = ops.cli("deadletters", "list")
    shown = ops.cli("deadletters", "show", prefix)
    shown_json = ops.cli("deadletters", "show", prefix, "--json")
    revealed = ops.cli("deadletters", "show", prefix, "--reveal")

    assert row["reason_code"] == "UNKNOWN_ACTIVITY"
    assert row["source_ref"] == "statement:a74aba15-f531-50db-a7c6-2f6d581fa116"
    for result in (listing, shown, shown_json):
        assert result.returncode == 0, result.stderr
        assert UNKNOWN_ACTIVITY_NPI not in result.stdout + result.stderr
        assert UNKNOWN_ACTIVITY_NAME not in result.stdout + result.stderr
    assert "UNKNOWN_ACTIVITY" in shown.stdout and row["source_ref"] in shown.stdout
    assert "payload" not in shown_json.json() and shown_json.json()["payload_bytes"] > 0
    assert revealed.returncode == 0, revealed.stderr
    assert UNKNOWN_ACTIVITY_NPI in revealed.stdout


def test_given_the_catalog_is_fixed_when_the_reconcile_dead_letter_is_retried_then_the_credit_reaches_the_registry(
    ops: Ops,
) -> None:
    night(ops)
    held_before = ops.sandboxes.ama.holdings()
    ops.catalog_path = catalog_with_act_999(ops.tmp)
    ops.write_config()

    retried = ops.cli("deadletters", "retry", "--stage", "reconcile", "--reason-code", "UNKNOWN_ACTIVITY", "--json")

    assert retried.returncode == 0, retried.stderr
    assert [(o["stage"], o["outcome"]) for o in retried.json()["outcomes"]] == [("reconcile", "resolved")]
    new = {rid: h for rid, h in ops.sandboxes.ama.holdings().items() if rid not in held_before}
    assert [(h["activity_id"], h["amount"]) for h in new.values()] == [("ACT-999", "3.00")]
    assert ops.cli("deadletters", "list", "--stage", "reconcile", "--unresolved", "--json").json() == []

    again = ops.cli("deadletters", "retry", "--stage", "reconcile", "--json")

    assert again.returncode == 0 and again.json()["outcomes"] == []
    assert len(ops.sandboxes.ama.accepted) == len(held_before) + 1


def test_given_nothing_was_fixed_when_dead_letters_are_retried_then_they_fail_again_with_their_reason(
    ops: Ops,
) -> None:
    night(ops)
    reconcile_id = only(ops, "--stage", "reconcile")["dead_letter_id"]
    normalise_id = only(ops, "--stage", "normalise")["dead_letter_id"]

    retried = ops.cli("deadletters", "retry", reconcile_id[:10], normalise_id[:10], "--json")

    assert retried.returncode == 1, retried.stderr
    outcomes = {o["dead_letter_id"]: o for o in retried.json()["outcomes"]}
    assert outcomes[reconcile_id]["outcome"] == "failed"
    assert "UNKNOWN_ACTIVITY" in outcomes[reconcile_id]["detail"]
    assert outcomes[normalise_id]["outcome"] == "failed"
    assert outcomes[normalise_id]["detail"].startswith("SCHEMA_INVALID")
    unresolved = {d["dead_letter_id"]: d for d in ops.cli("deadletters", "list", "--unresolved", "--json").json()}
    assert unresolved[reconcile_id]["attempts"] == 2
    assert normalise_id in unresolved


def test_given_a_failed_delivery_when_its_dead_letter_is_retried_then_only_that_credit_is_delivered(ops: Ops) -> None:
    ops.sandboxes.ama.faults = Faults(server_error=1.0)
    failed = night(ops)["delivery_failed"]
    ops.sandboxes.ama.faults = Faults()
    dead = ops.cli("deadletters", "list", "--stage", "deliver", "--json").json()

    retried = ops.cli("deadletters", "retry", dead[0]["dead_letter_id"], "--json")

    assert retried.returncode == 0, retried.stderr
    assert [o["outcome"] for o in retried.json()["outcomes"]] == ["resolved"]
    assert len(ops.sandboxes.ama.accepted) == 1
    assert len(ops.cli("deadletters", "list", "--stage", "deliver", "--unresolved", "--json").json()) == failed - 1


def test_given_a_dead_letter_dealt_with_by_hand_when_resolved_then_it_leaves_the_unresolved_list(ops: Ops) -> None:
    night(ops)
    normalise_id = only(ops, "--stage", "normalise")["dead_letter_id"]

    resolved = ops.cli("deadletters", "resolve", normalise_id, "--json")

    assert resolved.returncode == 0, resolved.stderr
    assert resolved.json() == {"resolved": 1}
    unresolved = ops.cli("deadletters", "list", "--unresolved", "--json").json()
    assert [d["stage"] for d in unresolved] == ["reconcile"]
    assert only(ops, "--stage", "normalise")["resolved_at"] is not None
