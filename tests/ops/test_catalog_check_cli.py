"""`cmesync config check` on a catalog: the shipped one (MOC on an ACCME activity) is usable, and a broken one
is reported as one line naming the activity and the field."""

from __future__ import annotations

import json

import pytest

from tests.ops.conftest import Ops

pytestmark = pytest.mark.integration

MOC_WITHOUT_ACCME = {
    "activities": [
        {
            "id": "MOC-1",
            "title": "Self-assessment with MOC",
            "format": "enduring",
            "accreditors": ["ANCC"],
            "designations": {"ABIM_MOC": "2.00"},
            "window": {"start": "2026-01-01", "end": "2026-12-31"},
        }
    ]
}
PROBLEM = "activity MOC-1: designations.ABIM_MOC needs ACCME among the activity's accreditors"


def test_given_moc_on_an_activity_without_accme_when_checking_the_config_then_one_line_names_it(ops: Ops) -> None:
    ops.catalog_path = ops.tmp / "catalog.json"
    ops.catalog_path.write_text(json.dumps(MOC_WITHOUT_ACCME), encoding="utf-8")
    ops.write_config()

    checked = ops.cli("config", "check", "--json")
    shown = ops.cli("config", "check")

    assert checked.returncode == shown.returncode == 1
    catalog = {r["component"]: r for r in checked.json()}["catalog"]
    assert (catalog["outcome"], catalog["detail"]) == ("failed", f"CatalogError: {PROBLEM}")
    [row] = [line for line in shown.stdout.splitlines() if PROBLEM in line]
    assert "catalog" in row and "failed" in row
