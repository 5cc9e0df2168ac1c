"""SIGKILL of `cmesync run` after the HR endpoint received the at-risk notices and before the ledger recorded
them, then a rerun: each notice is held once at the receiver (it de-duplicates on the notice id) and the ledger
ends up recording every one (from which a later run the same day sends nothing: tests/registries/test_hr_at_risk.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ledger import tables as t
from reconcile.compliance.roster import ROSTER_COLUMNS
from tests.faults.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.dialect]


def test_given_a_run_killed_after_hr_received_its_notices_when_rerun_then_each_is_held_once_and_recorded(
    world: World,
) -> None:
    # Deadlines a month from the run's day (the day the notices are keyed on), so both licences are at risk.
    deadline = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    roster = world.tmp / "compliance.csv"
    roster.write_text(
        ",".join(ROSTER_COLUMNS)
        + f"\nAcme,EH-0001,1493027167,,,CA,MD,{deadline},,\nAcme,EH-0002,1182746598,,,TX,MD,{deadline},,\n"
    )
    with world.config_path.open("a", encoding="utf-8") as config:  # the template ends with the HR registry
        config.write(f'at_risk_notices = true\n\n[compliance]\nroster_path = "{roster}"\n')

    assert world.run(crash_at="notices.received").killed
    held = {key: notice["receipt_id"] for key, notice in world.stack.hr.notices.items()}
    assert len(held) == 2, "the HR endpoint did not receive the notices before the kill"
    with world.ledger.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.hr_notices)) == 0

    world.run().counts()

    assert {key: notice["receipt_id"] for key, notice in world.stack.hr.notices.items()} == held
    with world.ledger.engine.connect() as conn:
        assert sorted(conn.scalars(select(t.hr_notices.c.notice_id))) == sorted(held)
