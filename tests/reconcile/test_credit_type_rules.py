"""Credit rules as data on the credit-type table (reconcile/credit_types.py): each type names its rule kind and
what that rule reads, and the evaluation order follows from it."""

from __future__ import annotations

import dataclasses

import pytest

from reconcile.credit_rules import RULES
from reconcile.credit_types import (
    ABIM_MOC,
    AMA_PRA_1,
    ANCC_CH,
    ANCC_PHARM,
    CREDIT_TYPES,
    CreditRule,
    evaluation_order,
)


def test_given_the_table_when_ordered_then_every_type_comes_after_the_type_its_rule_reads() -> None:
    order = list(CREDIT_TYPES)
    reading = [(code, spec.reads) for code, spec in CREDIT_TYPES.items() if spec.reads is not None]
    assert reading == [(ANCC_PHARM, ANCC_CH), ("AANP_RX", "AANP_CH"), (ABIM_MOC, AMA_PRA_1)]
    assert all(order.index(read) < order.index(code) for code, read in reading)


def test_given_a_table_listing_a_portion_first_when_ordered_then_its_parent_is_decided_before_it() -> None:
    pharm, contact_hours, moc, ama = (CREDIT_TYPES[c] for c in (ANCC_PHARM, ANCC_CH, ABIM_MOC, AMA_PRA_1))
    assert [t.code for t in evaluation_order([pharm, moc, contact_hours, ama])] == [
        ANCC_CH,
        ANCC_PHARM,
        AMA_PRA_1,
        ABIM_MOC,
    ]


def test_given_types_that_read_each_other_when_ordered_then_the_table_is_refused() -> None:
    ama = dataclasses.replace(CREDIT_TYPES[AMA_PRA_1], rule=CreditRule.CAPPED, capped_by=ABIM_MOC)
    with pytest.raises(ValueError, match="read each other"):
        evaluation_order([CREDIT_TYPES[ABIM_MOC], ama])


@pytest.mark.parametrize(
    "changes",
    [{"rule": CreditRule.PORTION}, {"portion_of": AMA_PRA_1}, {"rule": CreditRule.CAPPED}, {"capped_by": ANCC_CH}],
)
def test_given_a_rule_kind_without_what_it_reads_when_declared_then_it_is_refused(changes: dict) -> None:
    with pytest.raises(ValueError, match="portion_of goes with PORTION"):
        dataclasses.replace(CREDIT_TYPES[AMA_PRA_1], **changes)


def test_given_the_rule_kinds_when_looked_up_then_each_has_one_rule_and_the_table_uses_each() -> None:
    assert set(RULES) == set(CreditRule) == {spec.rule for spec in CREDIT_TYPES.values()}
    assert [code for code, spec in CREDIT_TYPES.items() if spec.evaluation_time] == [ANCC_CH]
    assert [code for code, spec in CREDIT_TYPES.items() if not spec.designated] == ["AMA_PRA_2"]
