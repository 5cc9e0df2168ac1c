"""Builders for the compliance tests: profiles from TOML text through the real parser, and earned credits."""

from __future__ import annotations

import textwrap
from datetime import date
from decimal import Decimal

from reconcile.compliance.evaluate import EarnedCredit
from reconcile.compliance.profiles import Profile, parse_profile

PROFILE_HEAD = """
id = "test-board"
name = "Test board licence renewal"
board = "Test Board"
source = "tests"
example = true
"""


def profile(body: str, head: str = PROFILE_HEAD) -> Profile:
    """A profile from its cycle settings and requirements (TOML), under a fixed identity header."""
    return parse_profile(textwrap.dedent(head) + textwrap.dedent(body), "test.toml")


def credit(
    completed_on: date,
    amount: str = "1.00",
    credit_type: str = "AMA_PRA_1",
    activity_id: str | None = None,
    tags: tuple[str, ...] = (),
) -> EarnedCredit:
    activity = activity_id or f"ACT-{completed_on.isoformat()}-{credit_type}"
    return EarnedCredit(
        record_id=f"rec-{activity}-{credit_type}",
        activity_id=activity,
        activity_title=f"Activity {activity}",
        credit_type=credit_type,
        amount=Decimal(amount),
        completed_on=completed_on,
        tags=tags,
    )
