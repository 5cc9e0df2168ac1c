"""The accreditor of each credit type is data on the credit-type table, and the catalog asks for it: ABIM MOC
points are registered by ACCME-accredited providers through PARS, so an ACCME activity may designate them."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import SAMPLE_DIR
from reconcile.catalog import CatalogError, load_catalog, parse_catalog
from reconcile.credit_types import ABIM_MOC, ACCREDITOR_OF, AMA_PRA_1, CREDIT_TYPES

MOC: dict[str, Any] = {
    "id": "MOC-1",
    "title": "Self-assessment with MOC",
    "format": "enduring",
    "accreditors": ["ACCME"],
    "designations": {"AMA_PRA_1": "2.00", "ABIM_MOC": "2.00"},
    "window": {"start": "2026-01-01", "end": "2026-12-31"},
}


def test_given_the_credit_type_table_then_abim_moc_is_issued_on_accme_accredited_activities() -> None:
    assert ACCREDITOR_OF[ABIM_MOC] == ACCREDITOR_OF[AMA_PRA_1] == "ACCME"
    assert all(ACCREDITOR_OF[code] == spec.accreditor for code, spec in CREDIT_TYPES.items())


def test_given_an_accme_activity_designated_for_moc_when_parsed_then_it_loads() -> None:
    activity = parse_catalog({"activities": [MOC]}).activities["MOC-1"]
    assert activity.designations[ABIM_MOC] == 2 and activity.accreditors == ("ACCME",)


def test_given_the_shipped_sample_catalogs_then_moc_needs_no_abim_among_the_accreditors() -> None:
    for name in ("catalog.json", "catalog.csv"):
        moc = [a for a in load_catalog(SAMPLE_DIR / name).activities.values() if ABIM_MOC in a.designations]
        assert moc and all("ABIM" not in a.accreditors for a in moc), name


@pytest.mark.parametrize("accreditors", [["ANCC"], []])
def test_given_moc_on_an_activity_without_accme_when_parsed_then_one_line_names_activity_and_field(
    accreditors: list[str],
) -> None:
    designations = {"ABIM_MOC": "2.00"}
    with pytest.raises(CatalogError) as raised:
        parse_catalog({"activities": [{**MOC, "accreditors": accreditors, "designations": designations}]})
    message = str(raised.value)
    assert message == "activity MOC-1: designations.ABIM_MOC needs ACCME among the activity's accreditors"
    assert "\n" not in message
