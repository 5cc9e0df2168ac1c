"""Certificate reference ids: stable, derived from the credit record, so the transcript, the HR webhook and the
PDF file name agree without storing anything. A pharmacology portion (ANCC_PHARM, AANP_RX) is printed on its
contact-hour type's certificate, so it shares that certificate's id. No PII goes into an id."""

from __future__ import annotations

import uuid

from reconcile.credit_types import CREDIT_TYPES
from reconcile.merge import record_id_for

ACTIVITY_NAMESPACE = uuid.UUID("5f0c4a8e-8f7e-4d1b-9a55-3c2f1a0b7e21")


def certified_type(credit_type: str) -> str:
    """The credit type whose certificate carries `credit_type`: itself, or the type it is a portion of."""
    known = CREDIT_TYPES.get(credit_type)
    return (known.portion_of if known else None) or credit_type


def certificate_id(learner_id: str, activity_id: str, credit_type: str) -> str:
    """The certificate of one credit (and its pharmacology portion)."""
    return "CERT-" + record_id_for(learner_id, activity_id, certified_type(credit_type))


def activity_certificate_id(learner_id: str, activity_id: str) -> str:
    """The certificate of all the learner's credits for one activity."""
    return "CERT-" + str(uuid.uuid5(ACTIVITY_NAMESPACE, f"{learner_id}|{activity_id}"))


def certificate_file(cert_id: str) -> str:
    return f"{cert_id}.pdf"
