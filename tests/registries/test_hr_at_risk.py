"""The at-risk compliance list to the employer HR endpoint as signed notices, over real HTTP against the HR
sandbox, with the ledger on SQLite and PostgreSQL: sent once per learner, cycle and day, nothing on a rerun the
same day, again the next day, the receiver de-duplicating on the idempotency key, failures named and resent,
no PII in the logs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete

from connectors.http import HttpClient, RetryPolicy
from connectors.registries.employer_hr import HmacSigner
from connectors.registries.hr_at_risk import AtRiskNotice, send_notices
from deploy.sandbox.base import Faults
from deploy.sandbox.hr_endpoint import HrEndpoint
from ledger import tables as t
from ledger.store import Ledger
from pipeline.config import PROFILES_DIR, SAMPLE_DIR, Settings
from pipeline.outcome import PARTIAL, outcome_of
from pipeline.stages.at_risk_notices import notify_at_risk
from reconcile.compliance.roster import ROSTER_COLUMNS

pytestmark = pytest.mark.integration

AS_OF = date(2026, 11, 23)
NPI_A, NPI_B, NPI_C = "1493027167", "1182746598", "2347190565"
EMAIL = "no.employee.id@example.org"
SECRET_ENV = "CMESYNC_TEST_HR_NOTICE_SECRET"
# E-1 and B-1 are at risk on AS_OF (deadlines within 90 days), E-2 is not (2028), the e-mail line is at risk
# but has no employee id: HR cannot be told about it.
COMPLIANCE_ROSTER = (
    ",".join(ROSTER_COLUMNS)
    + f"""
Acme Health,E-1,{NPI_A},,,CA,MD,2027-01-31,,
Acme Health,B-1,{NPI_B},,,TX,MD,2026-12-15,,
Acme Health,E-2,{NPI_C},,,CA,MD,2028-06-30,,
Acme Health,,,{EMAIL},,CA,MD,2027-01-31,,
"""
)
HR_ROSTER = f"employee_id,npi,licence_number,licence_state\nE-1,{NPI_A},,\nB-1,{NPI_B},,\nE-2,{NPI_C},,\n"


@pytest.fixture
def hr_endpoint() -> Iterator[HrEndpoint]:
    with HrEndpoint(secret="notice-secret") as sandbox:
        yield sandbox


@pytest.fixture
def settings(
    ledger_url: str, tmp_path: Path, hr_endpoint: HrEndpoint, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    for name in [n for n in os.environ if n.startswith("CMESYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(SECRET_ENV, "notice-secret")
    (tmp_path / "compliance.csv").write_text(COMPLIANCE_ROSTER)
    (tmp_path / "hr.csv").write_text(HR_ROSTER)
    config = tmp_path / "cmesync.toml"
    config.write_text(
        f"""ledger_url = "{ledger_url}"
catalog_path = "{SAMPLE_DIR / "catalog.json"}"

[compliance]
profiles_dir = "{PROFILES_DIR}"
roster_path = "{tmp_path / "compliance.csv"}"
at_risk_days = 90

[[registries]]
kind = "employer_hr"
name = "hr"
base_url = "{hr_endpoint.url}"
hmac_secret_env = "{SECRET_ENV}"
roster_path = "{tmp_path / "hr.csv"}"
at_risk_notices = true
max_attempts = 1
"""
    )
    with Ledger(ledger_url) as ledger:
        ledger.migrate()
    yield Settings.load(config)


def recorded(settings: Settings) -> int:
    with Ledger(settings.ledger_url) as ledger, ledger.engine.connect() as conn:
        return len(conn.execute(t.hr_notices.select()).all())


def test_given_staff_at_risk_when_notified_on_a_day_then_sent_once_and_again_the_next_day(
    settings: Settings, hr_endpoint: HrEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    first = notify_at_risk(settings, AS_OF)["hr"]
    requests_after_first = hr_endpoint.requests_seen
    rerun = notify_at_risk(settings, AS_OF)["hr"]
    next_day = notify_at_risk(settings, AS_OF + timedelta(days=1))["hr"]

    assert (first.sent, first.failed, first.not_staff) == (2, 0, 1)
    assert (rerun.sent, rerun.already_sent) == (0, 2)
    assert hr_endpoint.requests_seen == requests_after_first + 1  # the rerun made no request; the next day one
    assert (next_day.sent, next_day.already_sent) == (2, 0)
    notices = list(hr_endpoint.notices.values())
    assert sorted((n["employee_id"], n["as_of"]) for n in notices) == [
        ("B-1", "2026-11-23"),
        ("B-1", "2026-11-24"),
        ("E-1", "2026-11-23"),
        ("E-1", "2026-11-24"),
    ]
    e1 = next(n for n in notices if n["employee_id"] == "E-1")
    assert (e1["profile"], e1["deadline"], e1["standing"]) == ("ca-md", "2027-01-31", "at risk")
    assert [m["requirement"] for m in e1["missing"]]  # what is still missing, by requirement
    assert recorded(settings) == 4
    text = caplog.text + repr(notices)
    for pii in (NPI_A, NPI_B, NPI_C, EMAIL):
        assert pii not in text


def test_given_the_ledger_forgot_what_was_sent_when_notified_again_then_the_receiver_deduplicates(
    settings: Settings, hr_endpoint: HrEndpoint
) -> None:
    notify_at_risk(settings, AS_OF)
    receipts = {key: notice["receipt_id"] for key, notice in hr_endpoint.notices.items()}
    with Ledger(settings.ledger_url) as ledger, ledger.transaction() as conn:
        conn.execute(delete(t.hr_notices))

    again = notify_at_risk(settings, AS_OF)["hr"]

    assert again.sent == 2  # received: the endpoint answered duplicate with the first receipts
    assert {key: notice["receipt_id"] for key, notice in hr_endpoint.notices.items()} == receipts
    assert recorded(settings) == 2


def test_given_the_endpoint_down_when_notified_then_failures_are_counted_and_the_next_run_sends_them(
    settings: Settings, hr_endpoint: HrEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    hr_endpoint.faults = Faults(down=1)

    down = notify_at_risk(settings, AS_OF)["hr"]
    later = notify_at_risk(settings, AS_OF)["hr"]

    assert (down.sent, down.failed) == (0, 2)
    assert "2 at-risk notices not received" in caplog.text
    outcome = outcome_of({}, {}, notices_failed={"hr": down.failed})
    assert outcome.status == PARTIAL and "hr: 2 at-risk notices not received" in outcome.message
    assert (later.sent, later.failed) == (2, 0)
    assert len(hr_endpoint.notices) == 2


def test_given_a_wrong_secret_when_notified_then_the_endpoint_refuses_and_nothing_is_recorded(
    settings: Settings, hr_endpoint: HrEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")

    refused = notify_at_risk(settings, AS_OF)["hr"]

    assert (refused.sent, refused.failed) == (0, 2)
    assert hr_endpoint.refused_signatures == 1 and not hr_endpoint.notices
    assert recorded(settings) == 0


def test_given_a_notice_without_what_is_missing_when_posted_then_the_endpoint_rejects_it_alone(
    hr_endpoint: HrEndpoint,
) -> None:
    client = HttpClient(hr_endpoint.url, auth=HmacSigner("notice-secret"), retry=RetryPolicy(max_attempts=1))
    good = AtRiskNotice(
        "E-1",
        "Acme",
        "ca-md",
        date(2025, 2, 1),
        date(2027, 1, 31),
        AS_OF,
        "at risk",
        69,
        (("total", Decimal("46.25")),),
    )
    empty = replace(good, employee_id="E-2", missing=())

    results = send_notices(client, [good, empty], batch_size=10)

    assert [r.sent for r in results] == [True, False]
    assert results[1].error == "rejected: missing: must list the unmet requirements"
    assert list(hr_endpoint.notices) == [good.notice_id]
