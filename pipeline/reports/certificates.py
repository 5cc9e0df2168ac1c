"""Certificates of completion: what PAs and nurses self-report from to NCCPA, AANPCB and ANCC, who have no
provider reporting channel (domain/registries.md §3). One certificate per credit (a contact-hour credit carries
its pharmacology portion) or, asked for, one per activity: title, activity dates, completion date, provider,
accreditation statement, credit type and amount, pharmacology hours.

The credits are the ledger's latest AWARDED versions; the activity facts come from the catalog; the statements
from `certificates.path` (deploy/certificates.toml) with `certificates.statements` over it. The learner's name
goes into the certificate and nowhere else (no log, no error message, no file name).
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import groupby

from ledger.store import Ledger
from pipeline.config import CertificatesConfig
from pipeline.reports.transcript import earned_credits, identify_learner, learner_name
from reconcile.catalog import Activity, Catalog
from reconcile.certificate_ids import (
    activity_certificate_id,
    certificate_file,
    certificate_id,
    certified_type,
)
from reconcile.compliance.evaluate import EarnedCredit
from reconcile.compliance.roster import RosterEntry
from reconcile.credit_types import ACCREDITOR_OF

PLACEHOLDERS = frozenset({"provider", "activity_title", "credit_type_name", "designated"})


class CertificateError(ValueError):
    """The activity asked for is unknown, or the output cannot be written; the message carries no PII."""


class NothingToCertify(CertificateError):
    """The learner has no awarded credit (for the activity asked for): nothing was written."""


@dataclass(frozen=True)
class Wording:
    """The accreditation statement per accreditor and the printed name per credit type."""

    statements: Mapping[str, str]
    credit_type_names: Mapping[str, str]

    def name(self, credit_type: str) -> str:
        return self.credit_type_names.get(credit_type, credit_type)


def load_wording(config: CertificatesConfig) -> Wording:
    """The file's tables with the configured statements over them; a placeholder we do not fill is refused,
    naming the accreditor, so a typo fails at once rather than printing `{provder}` on every certificate."""
    try:
        data = tomllib.loads(config.path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"certificates file {config.path}: {err}") from None
    statements = {**data.get("statements", {}), **config.statements}
    for accreditor, text in statements.items():
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        if unknown := fields - PLACEHOLDERS:
            raise ValueError(
                f"certificates: statement {accreditor}: unknown placeholder(s) {', '.join(sorted(unknown))} "
                f"(use {', '.join(sorted(PLACEHOLDERS))})"
            )
    return Wording(statements, data.get("credit_type_names", {}))


@dataclass(frozen=True)
class CertifiedCredit:
    record_id: str
    credit_type: str
    credit_type_name: str
    amount: Decimal
    pharmacology: Decimal | None  # the pharmacology portion of these contact hours, if the learner earned one
    statement: str


@dataclass(frozen=True)
class Certificate:
    certificate_id: str
    learner_id: str
    learner_name: str | None  # PII: printed on the certificate only
    activity_id: str
    activity_title: str
    provider: str
    activity_format: str
    activity_dates: tuple[date, date] | None  # sessions' first and last day, else the accreditation window
    completed_on: date
    credits: tuple[CertifiedCredit, ...]

    @property
    def file_name(self) -> str:
        return certificate_file(self.certificate_id)

    @property
    def record_ids(self) -> list[str]:
        return [c.record_id for c in self.credits]


def _activity_dates(activity: Activity) -> tuple[date, date] | None:
    if activity.sessions:
        days = sorted(activity.local_day(s.start) for s in activity.sessions)
        return days[0], days[-1]
    if activity.window_start and activity.window_end:
        return activity.window_start, activity.window_end
    return None


def _statement(wording: Wording, activity: Activity, credit_type: str) -> str:
    accreditor = ACCREDITOR_OF.get(credit_type, "")
    template = wording.statements.get(accreditor)
    if template is None:
        return f"Accredited by {accreditor}." if accreditor else ""
    designated = activity.designations.get(credit_type)
    return template.format(
        provider=activity.provider,
        activity_title=activity.title,
        credit_type_name=wording.name(credit_type),
        designated=f"{designated:.2f}" if designated is not None else "the awarded",
    )


def _is_portion(credit: EarnedCredit) -> bool:
    return certified_type(credit.credit_type) != credit.credit_type


def _certified(credits: Sequence[EarnedCredit], activity: Activity, wording: Wording) -> list[CertifiedCredit]:
    """The activity's credits as printed: each pharmacology portion folded into the type it is a portion of
    (printed alone only if that type is not awarded)."""
    awarded = {c.credit_type for c in credits}
    portions = {certified_type(c.credit_type): c.amount for c in credits if _is_portion(c)}
    printed = [c for c in credits if not _is_portion(c) or certified_type(c.credit_type) not in awarded]
    return [
        CertifiedCredit(
            c.record_id,
            c.credit_type,
            wording.name(c.credit_type),
            c.amount,
            portions.get(c.credit_type),
            _statement(wording, activity, c.credit_type),
        )
        for c in sorted(printed, key=lambda c: c.credit_type)
    ]


def learner_certificates(
    ledger: Ledger,
    roster: Sequence[RosterEntry],
    catalog: Catalog,
    wording: Wording,
    learner: str,
    activity_id: str | None = None,
    per_activity: bool = False,
) -> list[Certificate]:
    """The certificates of the learner's awarded credits (of `activity_id` only, when given)."""
    learner_id, _ = identify_learner(ledger, roster, learner)
    if activity_id is not None and activity_id not in catalog.activities:
        raise CertificateError(f"no activity {activity_id!r} in the catalog")
    if learner_id is None:
        raise NothingToCertify("the learner is on the roster but has no credits in the ledger yet")
    earned = [
        c
        for c in earned_credits(ledger, [learner_id], {}).get(learner_id, [])
        if activity_id is None or c.activity_id == activity_id
    ]
    if not earned:
        where = f" for activity {activity_id!r}" if activity_id else ""
        raise NothingToCertify(f"the learner has no awarded credit{where}")
    name = learner_name(ledger, learner_id)
    completed_on = {c.record_id: c.completed_on for c in earned}
    certificates: list[Certificate] = []
    earned.sort(key=lambda c: (c.activity_id, c.credit_type))
    for activity_ref, group in groupby(earned, key=lambda c: c.activity_id):
        activity = catalog.activities.get(activity_ref)
        if activity is None:
            raise CertificateError(f"activity {activity_ref!r} of a credit is no longer in the catalog")
        lines = _certified(list(group), activity, wording)
        parts = [lines] if per_activity else [[line] for line in lines]
        for credits in parts:
            completed = max(completed_on[c.record_id] for c in credits)
            cert_id = (
                activity_certificate_id(learner_id, activity.activity_id)
                if per_activity
                else certificate_id(learner_id, activity.activity_id, credits[0].credit_type)
            )
            certificates.append(
                Certificate(
                    cert_id,
                    learner_id,
                    name,
                    activity.activity_id,
                    activity.title,
                    activity.provider,
                    activity.format,
                    _activity_dates(activity),
                    completed,
                    tuple(credits),
                )
            )
    return certificates
