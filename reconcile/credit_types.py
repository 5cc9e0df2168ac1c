"""The credit types we issue: who accredits them, who may receive them, how they are computed and rounded
(domain/credit-rules.md).

One table, read by the catalog (which designations are valid) and by the credit rules (what to compute, and
in which order: a type after the one it is a portion of or capped by).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

QUARTER = Decimal("0.25")


class Rounding(Enum):
    NEAREST_QUARTER = "nearest 0.25, half up; below 0.25 h none"
    DOWN_TO_INCREMENT = "down to the activity's increment (default 0.25)"


class CreditRule(Enum):
    """How an amount is computed (one function per kind in reconcile/credit_rules.py)."""

    PARTICIPATION = "participation time, else a completion earns the designation"
    CLAIM = "the learner's own claim: self-claimed, never designated by a provider"
    PORTION = "the designated portion, in proportion to the awarded credit of the type it is a portion of"
    CAPPED = "the credit awarded for the type it is capped by, at most the designation"


@dataclass(frozen=True)
class CreditType:
    code: str
    accreditor: str  # who accredits the activity's provider for it: the catalog demands it among `accreditors`
    professions: frozenset[str]
    rounding: Rounding
    source: str
    rule: CreditRule = CreditRule.PARTICIPATION
    evaluation_time: bool = False  # PARTICIPATION: the catalog's evaluation_minutes count once it is completed
    portion_of: str | None = None  # PORTION: a pharmacology portion of this contact-hour type
    capped_by: str | None = None  # CAPPED: never more than this type awarded for the same activity
    not_with: str | None = None  # CLAIM: never for an activity designated for this type

    def __post_init__(self) -> None:
        if (self.rule is CreditRule.PORTION) != (self.portion_of is not None) or (self.rule is CreditRule.CAPPED) != (
            self.capped_by is not None
        ):
            raise ValueError(f"{self.code}: portion_of goes with PORTION, capped_by with CAPPED")

    @property
    def designated(self) -> bool:
        return self.rule is not CreditRule.CLAIM

    @property
    def reads(self) -> str | None:
        """The type whose awarded credit this one's rule reads, so it is decided first."""
        return self.portion_of or self.capped_by


PHYSICIANS = frozenset({"MD", "DO"})
NURSES = frozenset({"RN", "NP", "CNS"})
ADVANCED_PRACTICE_NURSES = frozenset({"NP", "CNS"})

AMA_PRA_1 = "AMA_PRA_1"
AMA_PRA_2 = "AMA_PRA_2"
ANCC_CH = "ANCC_CH"
ANCC_PHARM = "ANCC_PHARM"
AANP_CH = "AANP_CH"
AANP_RX = "AANP_RX"
AAPA_1 = "AAPA_1"
ABIM_MOC = "ABIM_MOC"

_TYPES = (
    # AMA PRA booklet (as quoted by BU and Wright State CME offices): 60 min = 1.00, nearest 0.25, none below
    # 0.25 (read as: below 15 minutes before rounding), capped at the designation.
    CreditType(AMA_PRA_1, "ACCME", PHYSICIANS, Rounding.NEAREST_QUARTER, "AMA PRA booklet; AMA designation statement"),
    # ama-assn.org "the other kind of CME credit": claimed by the physician for activities *not certified* for
    # Category 1; a claim must be > 0 and at most 24 per activity-day (our choice, checked as INVALID_CLAIM).
    CreditType(
        AMA_PRA_2,
        "AMA",
        PHYSICIANS,
        Rounding.NEAREST_QUARTER,
        "ama-assn.org: AMA PRA Category 2 is self-designated and self-claimed",
        rule=CreditRule.CLAIM,
        not_with=AMA_PRA_1,
    ),
    # ANCC manual (Midwest Multistate Division; Colorado Nurses Assoc.): evaluation time included; ANCC sets no
    # rounding ("logical and defensible"): down to the increment, our choice.
    CreditType(
        ANCC_CH,
        "ANCC",
        NURSES,
        Rounding.DOWN_TO_INCREMENT,
        "ANCC manual (Midwest Multistate Division)",
        evaluation_time=True,
    ),
    # For NP and CNS: the designated pharmacology hours times (awarded contact hours ÷ designated contact
    # hours), rounded down (our choice).
    CreditType(
        ANCC_PHARM,
        "ANCC",
        ADVANCED_PRACTICE_NURSES,
        Rounding.DOWN_TO_INCREMENT,
        "AACN pharmacology-hours FAQ; UPMC pharmacology page",
        rule=CreditRule.PORTION,
        portion_of=ANCC_CH,
    ),
    # aanp.org education FAQ: excluding introductions, breaks, meals and evaluation time; rounded down (our choice).
    CreditType(AANP_CH, "AANP", frozenset({"NP"}), Rounding.DOWN_TO_INCREMENT, "aanp.org education FAQ"),
    # Designated up front; proportional to the AANP contact hours awarded, like ANCC_PHARM (our choice).
    CreditType(
        AANP_RX,
        "AANP",
        frozenset({"NP"}),
        Rounding.DOWN_TO_INCREMENT,
        "aanp.org education FAQ",
        rule=CreditRule.PORTION,
        portion_of=AANP_CH,
    ),
    # Nearest 0.25 and nothing below 0.25: our choice, mirroring AMA.
    CreditType(AAPA_1, "AAPA", frozenset({"PA"}), Rounding.NEAREST_QUARTER, "aapa.org CME FAQ"),
    # MOC points are registered by ACCME-accredited providers through PARS (ACCME's MOC collaboration with
    # ABIM): the activity's accreditor is ACCME; ABIM is the board that counts the points, not an accreditor.
    # min(designated MOC points, AMA PRA Category 1 awarded) (our choice), rounded down to the designated
    # increment (whole or quarter points), dated like the Category 1 credit.
    CreditType(
        ABIM_MOC,
        "ACCME",
        PHYSICIANS,
        Rounding.DOWN_TO_INCREMENT,
        "ACCME PARS MOC FAQ; accme.org/abim-moc",
        rule=CreditRule.CAPPED,
        capped_by=AMA_PRA_1,
    ),
)


def evaluation_order(types: Sequence[CreditType]) -> tuple[CreditType, ...]:
    """The table's order, except that a type comes after the one its rule reads (`CreditType.reads`)."""
    by_code = {t.code: t for t in types}
    ordered: dict[str, CreditType] = {}

    def place(credit_type: CreditType, reading: tuple[str, ...]) -> None:
        if credit_type.code in reading:
            raise ValueError(f"credit types read each other: {' → '.join((*reading, credit_type.code))}")
        if credit_type.code not in ordered:
            if credit_type.reads is not None:
                place(by_code[credit_type.reads], (*reading, credit_type.code))
            ordered[credit_type.code] = credit_type

    for credit_type in types:
        place(credit_type, ())
    return tuple(ordered.values())


CREDIT_TYPES: Mapping[str, CreditType] = {t.code: t for t in evaluation_order(_TYPES)}
ACCREDITOR_OF: Mapping[str, str] = {t.code: t.accreditor for t in _TYPES}
PROFESSIONS = frozenset().union(*(t.professions for t in _TYPES))
