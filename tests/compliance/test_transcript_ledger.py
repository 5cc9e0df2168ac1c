"""Transcripts and the nightly at-risk list from a real ledger (SQLite and PostgreSQL): the latest version of each
record counts, revoked ones do not; roster rows find their learners by NPI or e-mail; the run report lists the
learners at risk per employer, soonest deadline first, without PII."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger.runs import finish_run, start_run
from ledger.store import store_identities, utcnow
from pipeline.reports.run_report import (
    COMPLIANCE_TITLE,
    build_run_report,
    compliance_section,
    render_html,
    render_markdown,
)
from pipeline.reports.transcript import TranscriptError, compliance_summary, learner_transcripts, load_inputs
from reconcile.identity import LICENCE, NPI, licence_key, new_learner_id
from tests.compliance.conftest import AS_OF, EMAIL_B, NPI_A, NPI_C, World

pytestmark = [pytest.mark.integration, pytest.mark.dialect]


def a_history(world: World) -> None:
    """Learner A (CA MD, cycle 2025-02-01 .. 2027-01-31) and learner B (TX DO) as the reconcile stage left them."""
    a, b = world.learner_a, world.learner_b
    world.credit(a, "ACT-004", "3.75", date(2026, 11, 20))  # tagged pain-management
    world.credit(a, "ACT-001", "1.50", date(2025, 1, 31))  # the day before the cycle
    world.credit(a, "ACT-002", "2.00", date(2026, 11, 19))
    world.credit(a, "ACT-002", None, date(2026, 11, 19))  # voided: REVOKED
    world.credit(a, "ACT-006", "4.00", date(2026, 10, 1))
    world.credit(a, "ACT-006", "3.00", date(2026, 10, 1))  # corrected down: version 2
    world.credit(a, "ACT-005", "2.00", date(2027, 1, 31))  # on the deadline day
    world.credit(b, "ACT-006", "4.00", date(2026, 10, 1))  # tagged ethics


def amounts(world: World, learner: str, as_of: date = AS_OF) -> dict[str, Decimal]:
    [cycle] = learner_transcripts(world.ledger, load_inputs(world.settings()), learner, as_of).cycles
    return {r.requirement.id: r.counted for r in cycle.transcript.requirements}


def test_given_versions_and_revocations_when_transcribed_then_only_the_latest_awarded_versions_in_the_cycle_count(
    world: World,
) -> None:
    a_history(world)

    result = learner_transcripts(world.ledger, load_inputs(world.settings()), NPI_A, AS_OF)

    assert result.learner_id == world.learner_a
    [cycle] = result.cycles
    transcript = cycle.transcript
    assert (transcript.profile.id, transcript.cycle.start, transcript.cycle.end) == (
        "ca-md",
        date(2025, 2, 1),
        date(2027, 1, 31),
    )
    assert [(c.activity_id, c.amount) for c in transcript.credits] == [
        ("ACT-006", Decimal("3.00")),
        ("ACT-004", Decimal("3.75")),
    ]
    assert amounts(world, NPI_A) == {"total": Decimal("6.75"), "pain-management": Decimal("3.75")}
    assert (transcript.days_to_deadline, transcript.at_risk, result.at_risk) == (69, True, True)


def test_given_a_credit_completed_on_the_deadline_day_when_transcribed_as_of_that_day_then_it_counts(
    world: World,
) -> None:
    a_history(world)

    assert amounts(world, NPI_A, date(2027, 1, 31))["total"] == Decimal("8.75")
    assert amounts(world, NPI_A, date(2027, 1, 30))["total"] == Decimal("6.75")


@pytest.mark.parametrize("identifier", ["learner id", "e-mail"])
def test_given_a_learner_known_by_email_when_named_by_id_or_email_then_the_same_transcript_comes_back(
    world: World, identifier: str
) -> None:
    a_history(world)
    learner = world.learner_b if identifier == "learner id" else EMAIL_B.upper()

    result = learner_transcripts(world.ledger, load_inputs(world.settings()), learner, AS_OF)

    [cycle] = result.cycles
    assert (result.learner_id, cycle.transcript.profile.id, cycle.entry and cycle.entry.employee_id) == (
        world.learner_b,
        "tx-md-do",
        "E-2",
    )
    assert {r.requirement.id: r.met for r in cycle.transcript.requirements} == {
        "total": False,
        "formal": False,
        "ethics": True,
    }
    assert not result.at_risk


def test_given_a_roster_learner_the_ledger_never_saw_when_transcribed_then_nothing_is_earned_yet(world: World) -> None:
    result = learner_transcripts(world.ledger, load_inputs(world.settings()), NPI_C, AS_OF)

    [cycle] = result.cycles
    assert result.learner_id is None
    assert (cycle.transcript.profile.id, cycle.transcript.credits, cycle.transcript.status) == ("fl-md", (), "at risk")


def test_given_a_profile_option_when_transcribed_then_that_profile_is_evaluated_against_the_roster_expiry(
    world: World,
) -> None:
    a_history(world)

    result = learner_transcripts(world.ledger, load_inputs(world.settings()), NPI_A, AS_OF, profile_id="tx-md-do")

    [cycle] = result.cycles
    assert (cycle.transcript.profile.id, cycle.transcript.cycle.end) == ("tx-md-do", date(2027, 1, 31))
    assert cycle.transcript.requirements[2].counted == Decimal("3.00")  # ACT-006 is tagged ethics


def test_given_a_learner_off_the_roster_when_transcribed_then_profile_and_expiry_must_be_given(world: World) -> None:
    learner_d = new_learner_id([(NPI, "1639204852")])
    with world.ledger.transaction() as conn:
        store_identities(conn, {(NPI, "1639204852"): learner_d})
    world.credit(learner_d, "ACT-001", "1.50", date(2026, 11, 1))
    inputs = load_inputs(world.settings())

    with pytest.raises(TranscriptError, match="not on the compliance roster"):
        learner_transcripts(world.ledger, inputs, learner_d, AS_OF)
    result = learner_transcripts(world.ledger, inputs, "1639204852", AS_OF, "fl-md", date(2027, 1, 31))

    [cycle] = result.cycles
    assert (cycle.entry, cycle.transcript.requirements[1].counted) == (None, Decimal("1.50"))  # patient-safety


def test_given_a_learner_known_by_licence_only_when_named_by_state_and_number_then_it_is_found(world: World) -> None:
    licence = {"number": "L-555", "state": "TX", "profession": "DO"}
    learner_e = new_learner_id([(LICENCE, licence_key(licence))])
    with world.ledger.transaction() as conn:
        store_identities(conn, {(LICENCE, licence_key(licence)): learner_e})
    world.credit(learner_e, "ACT-006", "4.00", date(2026, 10, 1))

    result = learner_transcripts(
        world.ledger, load_inputs(world.settings()), "TX:L-555", AS_OF, "tx-md-do", date(2027, 6, 30)
    )

    assert result.learner_id == learner_e
    assert result.cycles[0].transcript.requirements[2].met  # ethics


@pytest.mark.parametrize(
    ("learner", "profile", "message"),
    [
        ("nobody@example.org", None, "no learner in the ledger or on the roster"),
        ("0000000000", None, "no learner in the ledger or on the roster"),
        (NPI_A, "xx-none", "no profile 'xx-none'"),
    ],
)
def test_given_an_unknown_learner_or_profile_when_transcribed_then_it_is_refused_without_echoing_the_identifier(
    world: World, learner: str, profile: str | None, message: str
) -> None:
    with pytest.raises(TranscriptError, match=message) as error:
        learner_transcripts(world.ledger, load_inputs(world.settings()), learner, AS_OF, profile)

    assert learner not in str(error.value)


def test_given_the_roster_when_summarised_then_at_risk_learners_are_listed_per_employer_soonest_deadline_first(
    world: World,
) -> None:
    a_history(world)

    summary = compliance_summary(world.ledger, load_inputs(world.settings()), AS_OF)

    assert [(a.entry.employer, a.entry.label, a.learner_id) for a in summary.at_risk] == [
        ("Acme Health", "E-1", world.learner_a),
        ("Beta Clinics", "B-1", None),
    ]
    assert summary.evaluated == 3
    assert (
        len(summary.unassigned) == 1
        and "compliance roster line 5: no profile applies to CA DO" in summary.unassigned[0]
    )


def test_given_a_run_when_reported_then_the_compliance_section_lists_the_at_risk_learners_without_pii(
    world: World,
) -> None:
    a_history(world)
    start_run(world.ledger, "run-1", "nightly")
    finish_run(world.ledger, "run-1", "succeeded", {"records_read": 1})
    section = compliance_section(world.settings(), AS_OF)

    report = build_run_report(world.ledger, "run-1", "Nightly", compliance=section)
    markdown, page = render_markdown(report), render_html(report)

    assert f"## {COMPLIANCE_TITLE}" in markdown
    assert f"| Acme Health | E-1 | {world.learner_a[:8]} | ca-md | 2027-01-31 | at risk, 69 days left |" in markdown
    assert "| Beta Clinics | B-1 | not in ledger | fl-md | 2026-12-15 | at risk, 22 days left |" in markdown
    assert markdown.index("Acme Health") < markdown.index("Beta Clinics")
    for pii in (NPI_A, NPI_C, EMAIL_B, "someone@example.org"):
        assert pii not in markdown and pii not in page


def test_given_a_broken_roster_when_reported_then_the_section_says_why_and_the_report_is_still_built(
    world: World,
) -> None:
    world.roster_path.write_text("npi,profession,licence_expires\n1493027168,MD,2027-01-31\n")
    start_run(world.ledger, "run-1", "nightly")
    finish_run(world.ledger, "run-1", "failed", {})

    section = compliance_section(world.settings(), utcnow().date())

    assert section.rows == [] and "not evaluated: compliance roster line 2: npi fails" in section.empty_note
    assert "not evaluated" in render_markdown(build_run_report(world.ledger, "run-1", "Nightly", compliance=section))
