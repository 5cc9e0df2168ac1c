"""The compliance roster: rows parsed and checked, errors naming line and column but never a value (PII)."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.config import SAMPLE_DIR
from pipeline.reports.transcript import load_roster
from reconcile.compliance.roster import RosterError, parse_roster
from reconcile.identity import EMAIL, LICENCE, NPI

HEADER = "employer,employee_id,npi,email,licence_number,licence_state,profession,licence_expires,profile,attributes\n"
VALID_NPI = "1493027167"
BAD_NPI = "1493027168"


def test_given_a_row_when_parsed_then_identifiers_profession_expiry_and_attributes_are_kept() -> None:
    text = HEADER + f"Acme,E-1,{VALID_NPI},Ann@Example.org,A 123,ca,md,2027-01-31,,DEA-Registrant; other\n"

    [entry] = parse_roster(text)

    assert (entry.line, entry.profession, entry.licence_state, entry.licence_expires) == (
        2,
        "MD",
        "CA",
        date(2027, 1, 31),
    )
    assert entry.attributes == frozenset({"dea-registrant", "other"})
    assert [kind for kind, _ in entry.identity_keys()] == [NPI, LICENCE, EMAIL]
    assert entry.label == "E-1"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f",,{VALID_NPI},,,CA,MD,,,", "line 2: licence_expires is empty"),
        (f",,{VALID_NPI},,,CA,MD,31/01/2027,,", "line 2: licence_expires is not an ISO date"),
        (f",,{VALID_NPI},,,CA,DVM,2027-01-31,,", "line 2: profession must be one of"),
        (f",,{BAD_NPI},,,CA,MD,2027-01-31,,", "line 2: npi fails the NPI check digit"),
        (",,,,A123,,MD,2027-01-31,,", "line 2: licence_state is needed with a licence_number"),
        (",,,,,CAL,MD,2027-01-31,,", "line 2: licence_state must be a two-letter state code"),
        (",,,,,CA,MD,2027-01-31,,", "one is needed to find the learner"),
        (f",,{VALID_NPI},,,CA,MD,2027-01-31,,,extra", "line 2: more values than columns"),
    ],
)
def test_given_a_bad_row_when_parsed_then_the_error_names_line_and_column_without_the_value(
    row: str, message: str
) -> None:
    with pytest.raises(RosterError) as error:
        parse_roster(HEADER + row + "\n")

    assert message in str(error.value)
    assert BAD_NPI not in str(error.value) and VALID_NPI not in str(error.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("npi,profession,licence_expires,licence_expiry\n", "unknown columns licence_expiry"),
        ("npi,profession\n", "missing columns licence_expires"),
    ],
)
def test_given_a_bad_header_when_parsed_then_the_columns_are_named(header: str, message: str) -> None:
    with pytest.raises(RosterError, match=message):
        parse_roster(header)


def test_given_the_sample_roster_when_loaded_then_every_row_is_valid() -> None:
    entries = load_roster(SAMPLE_DIR / "compliance_roster.csv")

    assert len(entries) >= 20
    assert {e.profession for e in entries} >= {"MD", "DO", "RN", "NP"}
