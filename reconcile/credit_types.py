"""The credit types we issue: who accredits them, who may receive them, how they round (domain/credit-rules.md).

One table, read by the catalog (which designations are valid) and by the credit rules (what to compute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

QUARTER = Decimal("0.25")


class Rounding(Enum):
    NEAREST_QUARTER = "nearest 0.25, half up; below 0.25 h none"
    DOWN_TO_INCREMENT = "down to the activity's increment (default 0.25)"


@dataclass(frozen=True)
class CreditType:
    code: str
    accreditor: str  # who accredits the activity's provider for it: the catalog demands it among `accreditors`
    professions: frozenset[str]
    rounding: Rounding
    source: str
    designated: bool = True  # False: self-claimed by the learner, never designated by a provider
    portion_of: str | None = None  # a pharmacology portion of this contact-hour type


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
    CreditType(AMA_PRA_1, "ACCME", PHYSICIANS, Rounding.NEAREST_QUARTER, "AMA PRA booklet; AMA designation statement"),
    CreditType(
        AMA_PRA_2,
        "AMA",
        PHYSICIANS,
        Rounding.NEAREST_QUARTER,
        "ama-assn.org: AMA PRA Category 2 is self-designated and self-claimed",
        designated=False,
    ),
    CreditType(ANCC_CH, "ANCC", NURSES, Rounding.DOWN_TO_INCREMENT, "ANCC manual (Midwest Multistate Division)"),
    CreditType(
        ANCC_PHARM,
        "ANCC",
        ADVANCED_PRACTICE_NURSES,
        Rounding.DOWN_TO_INCREMENT,
        "AACN pharmacology-hours FAQ; UPMC pharmacology page",
        portion_of=ANCC_CH,
    ),
    CreditType(AANP_CH, "AANP", frozenset({"NP"}), Rounding.DOWN_TO_INCREMENT, "aanp.org education FAQ"),
    CreditType(
        AANP_RX,
        "AANP",
        frozenset({"NP"}),
        Rounding.DOWN_TO_INCREMENT,
        "aanp.org education FAQ",
        portion_of=AANP_CH,
    ),
    CreditType(AAPA_1, "AAPA", frozenset({"PA"}), Rounding.NEAREST_QUARTER, "aapa.org CME FAQ"),
    # MOC points are registered by ACCME-accredited providers through PARS (ACCME's MOC collaboration with
    # ABIM): the activity's accreditor is ACCME; ABIM is the board that counts the points, not an accreditor.
    CreditType(ABIM_MOC, "ACCME", PHYSICIANS, Rounding.DOWN_TO_INCREMENT, "ACCME PARS MOC FAQ; accme.org/abim-moc"),
)

CREDIT_TYPES: Mapping[str, CreditType] = {t.code: t for t in _TYPES}
ACCREDITOR_OF: Mapping[str, str] = {t.code: t.accreditor for t in _TYPES}
PROFESSIONS = frozenset().union(*(t.professions for t in _TYPES))
