"""Licence/profession codes → the credit table's professions: the shipped mapping, its matching, the
UNKNOWN_PROFESSION hold for a code it does not list, and the `[professions]` config table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import PROFESSIONS_FILE, ConfigError, Settings
from reconcile.catalog import parse_catalog
from reconcile.credit_rules import UNKNOWN_PROFESSION, decide_credits
from reconcile.credit_types import PROFESSIONS
from reconcile.learners import LearnerFacts
from reconcile.professions import NO_CREDIT, ProfessionMapError, load_professions, parse_professions

SHIPPED = load_professions(PROFESSIONS_FILE)
CATALOG = parse_catalog(
    {
        "activities": [
            {
                "id": "ALL",
                "title": "Enduring module for every profession",
                "format": "enduring",
                "accreditors": ["ACCME", "ANCC", "AANP", "AAPA"],
                "designations": {
                    "AMA_PRA_1": "1.00",
                    "ANCC_CH": "1.00",
                    "ANCC_PHARM": "0.50",
                    "AANP_CH": "1.00",
                    "AANP_RX": "0.50",
                    "AAPA_1": "1.00",
                },
                "window": {"start": "2026-01-01", "end": "2026-12-31"},
            }
        ]
    }
)
NURSE_PRACTITIONER = ["AANP_CH", "AANP_RX", "ANCC_CH", "ANCC_PHARM"]


def credits_for(ev: Any, code: str | None) -> tuple[list[str], list[tuple[str, str]]]:
    events = [ev("c1", "COMPLETED", activity="ALL", profession=code)]
    decisions = decide_credits(CATALOG.activities["ALL"], code, LearnerFacts(code), events, SHIPPED)
    return sorted(decisions.awarded), [(h.reason_code, h.reason) for h in decisions.held]


@pytest.mark.parametrize(
    ("code", "profession"),
    [
        ("MD", "MD"),
        ("DO", "DO"),
        ("RN", "RN"),
        ("NP", "NP"),
        ("APRN", "NP"),
        ("ARNP", "NP"),
        ("CNP", "NP"),
        ("CRNP", "NP"),
        ("FNP", "NP"),
        ("CNS", "CNS"),
        ("CRNA", "RN"),
        ("DNP", "RN"),
        ("PA", "PA"),
        ("PA-C", "PA"),
        ("LPN", NO_CREDIT),
        ("LVN", NO_CREDIT),
    ],
)
def test_given_a_common_us_licence_code_when_mapped_then_it_is_a_credit_table_profession(
    code: str, profession: str
) -> None:
    assert SHIPPED.profession_of(code) == profession


@pytest.mark.parametrize("written", ["pa-c", "PA-C", "PAC", "P.A.-C.", " pa c "])
def test_given_a_code_in_any_case_and_punctuation_when_mapped_then_it_is_one_code(written: str) -> None:
    assert SHIPPED.profession_of(written) == "PA"


def test_given_the_shipped_mapping_then_every_target_is_a_credit_table_profession_and_each_is_mapped_to_itself() -> (
    None
):
    assert set(SHIPPED.codes.values()) <= PROFESSIONS | {NO_CREDIT}
    assert all(SHIPPED.profession_of(p) == p for p in PROFESSIONS)


@pytest.mark.parametrize(
    ("code", "awarded"),
    [
        ("APRN", NURSE_PRACTITIONER),
        ("arnp", NURSE_PRACTITIONER),
        ("PA-C", ["AAPA_1"]),
        ("CRNA", ["ANCC_CH"]),
        ("D.O.", ["AMA_PRA_1"]),
    ],
)
def test_given_a_state_board_code_when_decided_then_the_mapped_professions_credits_are_issued(
    ev: Any, code: str, awarded: list[str]
) -> None:
    assert credits_for(ev, code) == (awarded, [])


def test_given_a_code_mapped_to_no_credit_when_decided_then_no_record_and_no_hold(ev: Any) -> None:
    assert credits_for(ev, "LPN") == ([], [])


def test_given_a_code_the_mapping_does_not_list_when_decided_then_held_naming_the_code(ev: Any) -> None:
    awarded, held = credits_for(ev, "CNM-X")
    assert awarded == []
    assert held == [(UNKNOWN_PROFESSION, "the licence/profession code CNMX is not in the profession mapping")]


def test_given_free_text_instead_of_a_code_when_held_then_the_reason_does_not_quote_it(ev: Any) -> None:
    _, [(code, reason)] = credits_for(ev, "Nurse practitioner Jane Roe")
    assert code == UNKNOWN_PROFESSION and "JANE" not in reason.upper() and "free text" in reason


@pytest.mark.parametrize(
    ("codes", "problem"),
    [
        ({"RN": "NURSE"}, "RN: maps to 'NURSE'"),
        ({"PA-C": "PA", "PAC": "MD"}, "PAC: is PAC once normalised, mapped twice differently"),
        ({"--": "MD"}, "has no letters or digits"),
        ({}, "needs a non-empty [codes] table"),
    ],
)
def test_given_a_broken_mapping_when_parsed_then_refused_naming_the_code(codes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ProfessionMapError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_professions({"codes": codes})


def test_given_extra_codes_in_the_config_when_loaded_then_they_add_to_the_shipped_file(tmp_path: Path) -> None:
    config = tmp_path / "cmesync.toml"
    config.write_text('[professions.codes]\n"RNP" = "NP"\n"LPN" = "RN"\n')
    mapping = Settings.load(config).professions.mapping()
    assert (mapping.profession_of("rnp"), mapping.profession_of("LPN"), mapping.profession_of("PA-C")) == (
        "NP",
        "RN",
        "PA",
    )


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('[professions.codes]\nRNP = "NURSE"\n', "professions: profession code RNP: maps to 'NURSE'"),
        ('[professions]\npath = "/nonexistent/professions.toml"\n', "professions: profession mapping /nonexistent"),
        ('[professions]\nfile = "x.toml"\n', "professions.file"),
    ],
)
def test_given_a_broken_professions_table_when_the_config_loads_then_refused(
    tmp_path: Path, toml: str, problem: str
) -> None:
    config = tmp_path / "cmesync.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=problem):
        Settings.load(config)
