"""Requirement profiles as data: the shipped examples load, a bad file is refused naming file and field, and
licences get their default profile by state and profession."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import PROFILES_DIR
from pipeline.reports.transcript import load_profiles
from reconcile.compliance.profiles import ProfileError, default_profile, index_profiles, parse_profile
from tests.compliance.builders import PROFILE_HEAD, profile

EXAMPLE_HEADER = "# EXAMPLE — verify against the board's current rules"

GOOD_REQUIREMENT = """
[[requirements]]
id = "total"
name = "Total"
credit_types = ["AMA_PRA_1", "AMA_PRA_2"]
minimum = 10
"""


def test_given_the_shipped_profiles_when_loaded_then_each_is_a_marked_example_with_requirements() -> None:
    profiles = load_profiles(PROFILES_DIR)

    assert {"ca-md", "tx-md-do", "fl-md", "nccpa-pa", "aanpcb-np", "ancc-np"} <= set(profiles)
    for path in PROFILES_DIR.glob("*.toml"):
        assert path.read_text(encoding="utf-8").startswith(EXAMPLE_HEADER), path.name
    assert all(p.example and p.requirements for p in profiles.values())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "cycle_months = 0\n" + GOOD_REQUIREMENT,
            "test.toml: cycle_months: Input should be greater than or equal to 1",
        ),
        (
            "cycle_months = 24\ncycle_ends = 'renewal'\n" + GOOD_REQUIREMENT,
            "test.toml: cycle_ends: Input should be 'expiry' or 'year_end'",
        ),
        ("cycle_months = 24\n", "test.toml: requirements: Field required"),
        (
            "cycle_months = 24\n" + GOOD_REQUIREMENT.replace("AMA_PRA_2", "AMA_PRA_9"),
            "test.toml: requirements[0].credit_types: 'AMA_PRA_9' is not a credit type",
        ),
        (
            "cycle_months = 24\n" + GOOD_REQUIREMENT.replace("minimum = 10", "minimum = 0"),
            "test.toml: requirements[0].minimum: Input should be greater than 0",
        ),
        (
            "cycle_months = 24\n" + GOOD_REQUIREMENT.replace("minimum = 10", "minimun = 10"),
            "test.toml: requirements[0].minimum: Field required",
        ),
        (
            "cycle_months = 24\n" + GOOD_REQUIREMENT + "caps = { AANP_CH = 2 }\n",
            "test.toml: requirements[0]: caps.AANP_CH: only a credit type the requirement counts can be capped",
        ),
        (
            "cycle_months = 24\n" + GOOD_REQUIREMENT + "period = 'yearly'\n",
            "test.toml: requirements[0].period: Input should be 'cycle' or 'once'",
        ),
        (
            "cycle_months = 24\nrecognise = { AMA_PRA_1 = 'AAPA_1' }\n" + GOOD_REQUIREMENT,
            "test.toml: profile: requirements[0].credit_types: AMA_PRA_1 counts as AAPA_1 in this profile",
        ),
        (
            "cycle_months = 24\napplies_to = [{ state = 'California', profession = 'MD' }]\n" + GOOD_REQUIREMENT,
            "test.toml: applies_to[0].state: String should match pattern",
        ),
        (
            "cycle_months = 24\napplies_to = [{ state = 'CA', profession = 'DVM' }]\n" + GOOD_REQUIREMENT,
            "test.toml: applies_to[0].profession: 'DVM' is not a profession",
        ),
        ("cycle_months = 24\n" + GOOD_REQUIREMENT + GOOD_REQUIREMENT, "'total' is used twice"),
        ("cycle_months = [24\n", "test.toml: not valid TOML"),
    ],
)
def test_given_a_bad_profile_when_parsed_then_the_error_names_the_file_and_the_field(body: str, message: str) -> None:
    with pytest.raises(ProfileError) as error:
        profile(body)

    assert message in str(error.value)


def test_given_a_misspelt_key_when_parsed_then_it_is_refused_rather_than_ignored() -> None:
    body = "cycle_months = 24\n" + GOOD_REQUIREMENT + "topic = ['ethics']\n"

    with pytest.raises(ProfileError, match=r"requirements\[0\]\.topic: Extra inputs are not permitted"):
        profile(body)


def test_given_two_profiles_claiming_one_licence_when_indexed_then_both_files_are_named() -> None:
    body = "cycle_months = 24\napplies_to = [{ state = 'CA', profession = 'MD' }]\n" + GOOD_REQUIREMENT
    first = parse_profile(PROFILE_HEAD + body, "a.toml")
    second = parse_profile(PROFILE_HEAD.replace("test-board", "other-board") + body, "b.toml")

    with pytest.raises(ProfileError, match=r"b\.toml: applies_to CA MD is also claimed by a\.toml"):
        index_profiles([("a.toml", first), ("b.toml", second)])


def test_given_two_files_with_one_id_when_loaded_then_refused(tmp_path: Path) -> None:
    text = PROFILE_HEAD + "cycle_months = 24\n" + GOOD_REQUIREMENT
    (tmp_path / "one.toml").write_text(text)
    (tmp_path / "two.toml").write_text(text)

    with pytest.raises(ProfileError, match=r"two\.toml: id 'test-board' is also the id of one\.toml"):
        load_profiles(tmp_path)


@pytest.mark.parametrize(
    ("state", "profession", "expected"),
    [
        ("CA", "MD", "ca-md"),
        ("TX", "DO", "tx-md-do"),
        ("TX", "MD", "tx-md-do"),
        ("FL", "MD", "fl-md"),
        ("NY", "PA", "nccpa-pa"),  # a national certification: any state
        (None, "PA", "nccpa-pa"),
        ("CA", "DO", None),  # the example set has no California DO profile
        ("FL", "NP", None),  # two NP certifications: the roster must name one
    ],
)
def test_given_a_licence_when_no_profile_is_named_then_its_state_and_profession_choose_the_default(
    state: str | None, profession: str, expected: str | None
) -> None:
    chosen = default_profile(load_profiles(PROFILES_DIR), state, profession)

    assert (chosen.id if chosen else None) == expected
