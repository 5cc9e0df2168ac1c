"""`cmesync certificates`: certificates of completion as PDF files (`pipeline.reports.certificates`), kept apart from
`flows/cli.py`, which declares the command and its options. Stdout names the files written (their names are reference
ids, never the learner's name)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from ledger.store import Ledger
from pipeline.config import ConfigError, Settings
from pipeline.reports.certificates import (
    Certificate,
    CertificateError,
    NothingToCertify,
    learner_certificates,
    load_wording,
)

console = Console(stderr=True)

HELP = (
    "Render the learner's certificates of completion as PDF files in DIR, one per credit (a contact-hour credit "
    "carries its pharmacology hours) or, with --per-activity, one per activity: title, activity dates, "
    "completion date, provider, accreditation statement (deploy/certificates.toml, config [certificates]), "
    "credit type and amount. PAs and nurses self-report to NCCPA, AANPCB and ANCC from these. LEARNER is "
    "named as for `cmesync transcript`. A file is named after the certificate's reference id, which the "
    "transcript and the HR webhook carry too; rendering again writes the same bytes.\n"
    "Exit code 0: certificates written; 1: the learner has no awarded credit (for --activity); 2: unknown "
    "learner or activity, bad arguments, configuration, or DIR cannot be written."
)


def _as_dict(certificate: Certificate, path: Path) -> dict[str, Any]:
    return {
        "certificate_id": certificate.certificate_id,
        "file": str(path),
        "activity_id": certificate.activity_id,
        "completed_on": certificate.completed_on.isoformat(),
        "credits": [
            {
                "record_id": c.record_id,
                "credit_type": c.credit_type,
                "amount": f"{c.amount:.2f}",
                "pharmacology": f"{c.pharmacology:.2f}" if c.pharmacology is not None else None,
            }
            for c in certificate.credits
        ],
    }


def run(settings: Settings, learner: str, activity: str | None, per_activity: bool, out: Path, as_json: bool) -> int:
    """Exit code per HELP; an unknown learner or activity raises `CertificateError` or `TranscriptError`."""
    from pipeline.catalog import fetch_catalog
    from pipeline.reports.certificate_pdf import render_pdf
    from pipeline.reports.transcript import load_roster
    from reconcile.catalog import CatalogError
    from reconcile.compliance.roster import RosterError

    try:
        wording = load_wording(settings.certificates)
        catalog = fetch_catalog(settings)
        roster = load_roster(settings.compliance.roster_path)
    except (ValueError, CatalogError, RosterError) as err:
        raise ConfigError(str(err)) from None
    try:
        with Ledger(settings.ledger_url) as ledger:
            found = learner_certificates(ledger, roster, catalog, wording, learner, activity, per_activity)
    except NothingToCertify as err:
        console.print(f"nothing to certify: {err}", highlight=False, soft_wrap=True)
        if as_json:
            print(json.dumps({"certificates": []}))
        return 1
    written: list[dict[str, Any]] = []
    for certificate in found:
        path = out / certificate.file_name
        try:
            out.mkdir(parents=True, exist_ok=True)
            path.write_bytes(render_pdf(certificate))
        except OSError as err:
            raise CertificateError(f"--out {out}: {err.strerror}") from None
        written.append(_as_dict(certificate, path))
    if as_json:
        print(json.dumps({"certificates": written}, indent=2))
    else:
        for item in written:
            print(item["file"])
        console.print(f"{len(written)} certificate(s) written to {out}")
    return 0
