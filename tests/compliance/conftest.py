"""A compliance world on a real ledger (SQLite and PostgreSQL): learners and credit versions written through the
ledger's store API as the reconcile stage writes them, a roster file, the shipped profiles and sample catalog."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.credits import store_credits
from ledger.store import Ledger, store_identities, utcnow
from pipeline.config import PROFILES_DIR, SAMPLE_DIR, Settings
from pipeline.stages.reconcile import credit_record
from reconcile.credit_rules import CreditDecision
from reconcile.identity import EMAIL, NPI, new_learner_id
from reconcile.merge import CreditState, merge, record_id_for

NPI_A = "1493027167"  # on the roster and in the ledger (CA MD)
NPI_C = "1182746598"  # on the roster only (FL MD): no credits yet
EMAIL_B = "b.learner@example.org"  # in the ledger by e-mail only (TX DO)
AS_OF = date(2026, 11, 23)

ROSTER = f"""employer,employee_id,npi,email,licence_number,licence_state,profession,licence_expires,profile,attributes
Acme Health,E-1,{NPI_A},,,CA,MD,2027-01-31,,
Acme Health,E-2,,{EMAIL_B},,TX,DO,2028-06-30,,
Beta Clinics,B-1,{NPI_C},,,FL,MD,2026-12-15,,
Acme Health,E-3,,someone@example.org,,CA,DO,2027-01-31,,
"""


@dataclass
class World:
    ledger: Ledger
    ledger_url: str
    tmp: Path
    learner_a: str
    learner_b: str

    @property
    def roster_path(self) -> Path:
        return self.tmp / "roster.csv"

    @property
    def config_path(self) -> Path:
        return self.tmp / "cmesync.toml"

    def settings(self) -> Settings:
        return Settings.load(self.config_path)

    def credit(
        self, learner_id: str, activity_id: str, amount: str | None, completed_on: date, credit_type: str = "AMA_PRA_1"
    ) -> CreditState:
        """Write the next version of the learner's record for the activity: awarded `amount`, or revoked (None)."""
        record_id = record_id_for(learner_id, activity_id, credit_type)
        evidence = (f"lms:{activity_id}",)
        decision = CreditDecision(credit_type, Decimal(amount), completed_on, evidence) if amount else None
        with self.ledger.transaction() as conn:
            current = self.ledger.current_credits(conn, [record_id]).get(record_id)
            state = merge(current, decision, learner_id, activity_id, credit_type)
            assert state is not None, "the test asked for a version that changes nothing"
            record = credit_record(state, f"Title of {activity_id}", {}, utcnow())
            store_credits(conn, {}, [(state, record)], [])
        return state


@pytest.fixture(autouse=True)
def files_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the config file says, not what this shell's CMESYNC_* variables override."""
    for name in [n for n in os.environ if n.startswith("CMESYNC_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def world(ledger_url: str, tmp_path: Path) -> Iterator[World]:
    ledger = Ledger(ledger_url)
    ledger.migrate()
    learner_a = new_learner_id([(NPI, NPI_A)])
    learner_b = new_learner_id([(EMAIL, EMAIL_B)])
    with ledger.transaction() as conn:
        store_identities(conn, {(NPI, NPI_A): learner_a, (EMAIL, EMAIL_B): learner_b})
    world = World(ledger, ledger_url, tmp_path, learner_a, learner_b)
    world.roster_path.write_text(ROSTER)
    world.config_path.write_text(
        f"""ledger_url = "{ledger_url}"
catalog_path = "{SAMPLE_DIR / "catalog.json"}"

[compliance]
profiles_dir = "{PROFILES_DIR}"
roster_path = "{world.roster_path}"
at_risk_days = 90
"""
    )
    yield world
    ledger.close()
