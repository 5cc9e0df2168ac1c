"""A certificate of completion as a one-page PDF (ReportLab's platypus): landscape letter, the learner's name,
the activity, its dates and provider, a table of the credits awarded (with pharmacology hours), the
accreditation statements and the certificate's reference id. `invariant` makes the bytes depend on the content
only, so rendering the same certificate again writes the same file."""

from __future__ import annotations

import io
from datetime import date
from html import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import landscape, letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from pipeline.reports.certificates import Certificate
from reconcile.catalog import ENDURING

_BASE = getSampleStyleSheet()
TITLE = ParagraphStyle("title", parent=_BASE["Title"], fontSize=26, spaceAfter=10)
CENTRED = ParagraphStyle("centred", parent=_BASE["Normal"], alignment=TA_CENTER, fontSize=12, leading=16)
NAME = ParagraphStyle("name", parent=CENTRED, fontName="Helvetica-Bold", fontSize=20, leading=26)
SMALL = ParagraphStyle("small", parent=_BASE["Normal"], fontSize=9, leading=12)


def _day(value: date) -> str:
    return f"{value:%B} {value.day}, {value:%Y}"


def _dates(certificate: Certificate) -> str:
    if certificate.activity_dates is None:
        return ""
    first, last = certificate.activity_dates
    if certificate.activity_format == ENDURING:
        return f"Available from {_day(first)} to {_day(last)}"  # an enduring activity's dates are its window
    if first == last:
        return f"Activity date: {_day(first)}"
    return f"Activity dates: {_day(first)} to {_day(last)}"


def _credits_table(certificate: Certificate) -> Table:
    # The pharmacology column only where a credit has a pharmacology portion (nurse practitioners' credits).
    pharmacology = any(c.pharmacology is not None for c in certificate.credits)
    rows = [["Credit type", "Amount awarded", *(["Pharmacology hours"] if pharmacology else [])]]
    rows += [
        [
            c.credit_type_name,
            f"{c.amount:.2f}",
            *([f"{c.pharmacology:.2f}" if c.pharmacology is not None else "none"] if pharmacology else []),
        ]
        for c in certificate.credits
    ]
    widths = [4.2 * inch, 1.6 * inch, *([1.8 * inch] if pharmacology else [])]
    table = Table(rows, colWidths=widths, hAlign="CENTER")
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.HexColor("#1d2433")),
                ("LINEBELOW", (0, 1), (-1, -1), 0.3, colors.HexColor("#d8dde6")),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    return table


def render_pdf(certificate: Certificate) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(letter),
        leftMargin=0.8 * inch,
        rightMargin=0.8 * inch,
        topMargin=0.7 * inch,
        bottomMargin=0.6 * inch,
        title=f"Certificate of completion: {certificate.activity_title}",
        author=certificate.provider,
        subject=certificate.certificate_id,
        invariant=True,
    )
    e = escape
    story = [
        Paragraph("Certificate of Completion", TITLE),
        Paragraph("This certifies that", CENTRED),
        Spacer(1, 6),
        Paragraph(e(certificate.learner_name or f"Learner {certificate.learner_id}"), NAME),
        Spacer(1, 6),
        Paragraph("completed the activity", CENTRED),
        Paragraph(f"<b>{e(certificate.activity_title)}</b>", CENTRED),
        Paragraph(f"Provided by {e(certificate.provider)} ({e(certificate.activity_format)})", CENTRED),
        Paragraph(e(_dates(certificate)), CENTRED),
        Paragraph(f"Completed on {_day(certificate.completed_on)}", CENTRED),
        Spacer(1, 12),
        _credits_table(certificate),
        Spacer(1, 12),
    ]
    for statement in dict.fromkeys(c.statement for c in certificate.credits if c.statement):
        story += [Paragraph(e(statement), SMALL), Spacer(1, 4)]
    story.append(
        Paragraph(
            f"Certificate {e(certificate.certificate_id)} · activity {e(certificate.activity_id)} · "
            f"learner {e(certificate.learner_id)}",
            SMALL,
        )
    )
    document.build(story)
    return buffer.getvalue()
