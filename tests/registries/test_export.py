"""The file channels over the ledger (SQLite and PostgreSQL) and the sandboxes over real HTTP: the PARS
learner file and the CE Broker roster file hold exactly the pending deliveries in the documented layout, and a
delivery pass afterwards sends none of them again."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.cebroker import CeBrokerRegistry
from connectors.registries.reporting_year import YearClose
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from deploy.sandbox.cebroker import CeBroker
from flows.cli import main
from ledger.store import Ledger
from pipeline.ops.export import export_pending
from pipeline.stages.deliver import deliver_pending
from tests.registries.conftest import TODAY
from tests.registries.test_delivery import PII, deliveries

Credits = Any  # the `credits` fixture: tests/registries/conftest.py Credits

# README "File channels": the layouts offices upload.
PARS_HEADER = [
    "LearnerRecordAction",
    "CreditID",
    "GivenName",
    "FamilyName",
    "BirthDate",
    "NPI",
    "BoardID",
    "Board",
    "LicenceNumber",
    "LicenceState",
    "ModuleID",
    "ModuleName",
    "CompletedDate",
    "ActivityCertification",
    "CreditUnit",
    "NumberOfCredits",
]
CEBROKER_HEADER = [
    "Action",
    "ExternalRef",
    "ActivityID",
    "CourseTitle",
    "License",
    "State",
    "Profession",
    "FirstName",
    "LastName",
    "DateCompleted",
    "SubjectArea",
    "Hours",
]


def xlsx_rows(path: Path) -> list[dict[str, Any]]:
    header, *rows = load_workbook(path, read_only=True).active.iter_rows(values_only=True)
    assert list(header) == PARS_HEADER
    return [dict(zip(header, row, strict=True)) for row in rows]


def tsv_rows(path: Path, header: list[str]) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file, delimiter="\t")
        assert reader.fieldnames == header
        return list(reader)


def test_given_pending_pars_deliveries_when_exported_as_xlsx_then_one_row_each_and_the_api_sends_none_again(
    ledger: Ledger, ama: AmaPraRegistry, ama_sandbox: AmaSandbox, credits: Credits, tmp_path: Path
) -> None:
    chosen = [credits.record(activity_id="ACT-002", amount=amount) for amount in ("1.00", "2.50")]
    other = credits.record(activity_id="ACT-003")
    credits.seed(ledger, [*chosen, other], [ama])

    exported = export_pending(ledger, ama, tmp_path / "pars.xlsx", "xlsx", activity="ACT-002")

    assert exported is not None and (exported.records, exported.rows) == (2, 2)
    rows = xlsx_rows(tmp_path / "pars.xlsx")
    assert sorted((r["CreditID"], r["NumberOfCredits"]) for r in rows) == sorted(
        (f"ccid:{r['record_id']}:1", float(r["amount"])) for r in chosen
    )
    assert {(r["LearnerRecordAction"], r["ModuleID"], r["NPI"], r["GivenName"]) for r in rows} == {
        ("add", "ACT-002", credits.physician["npi"], credits.physician["given_name"])
    }
    assert {deliveries(ledger, "ama-pra")[(r["record_id"], 1)]["receipt"] for r in chosen} == {"export:pars.xlsx"}

    stats = deliver_pending(ledger, ama)

    assert stats.delivered == 1
    assert set(ama_sandbox.holdings()) == {other["record_id"]}


def test_given_a_correction_and_a_closed_year_when_exported_then_delete_and_add_rows_and_the_closed_year_stays(
    ledger: Ledger, ama_sandbox: AmaSandbox, ama: AmaPraRegistry, credits: Credits, tmp_path: Path
) -> None:
    closing = AmaPraRegistry("ama-pra", ama.client, year_close=YearClose.parse("03-31"), today=lambda: TODAY)
    corrected = credits.record(version=2, amount="3.00")
    too_old = credits.record(completed_on=date(2024, 6, 1))
    credits.seed(ledger, [corrected, too_old], [closing])

    exported = export_pending(ledger, closing, tmp_path / "pars.xlsx", "xlsx")

    assert exported is not None and (exported.records, exported.rows) == (1, 2)
    rows = xlsx_rows(tmp_path / "pars.xlsx")
    assert [(r["LearnerRecordAction"], r["CreditID"]) for r in rows] == [
        ("delete", f"ccid:{corrected['record_id']}:1"),
        ("add", f"ccid:{corrected['record_id']}:2"),
    ]
    assert deliveries(ledger, "ama-pra")[(too_old["record_id"], 1)]["state"] == "pending"


def test_given_pending_cebroker_deliveries_when_exported_as_tsv_then_one_row_each_and_the_api_sends_none_again(
    ledger: Ledger, cebroker: CeBrokerRegistry, cebroker_sandbox: CeBroker, credits: Credits, tmp_path: Path
) -> None:
    nurses = [
        credits.record("ANCC_CH", learner=credits.nurse),
        credits.record("ANCC_PHARM", learner=credits.nurse_practitioner, amount="0.75"),
    ]
    credits.seed(ledger, nurses, [cebroker])

    exported = export_pending(ledger, cebroker, tmp_path / "roster.tsv", "tsv")

    assert exported is not None and exported.records == 2
    rows = tsv_rows(tmp_path / "roster.tsv", CEBROKER_HEADER)
    assert sorted((r["ExternalRef"], r["License"], r["SubjectArea"], r["Hours"]) for r in rows) == sorted(
        (
            f"{n['record_id']}:1",
            n["learner"]["licence_number"],
            cebroker.subject_areas[n["credit_type"]],
            f"{n['amount']:.2f}",
        )
        for n in nurses
    )
    assert {r["DateCompleted"] for r in rows} == {nurses[0]["completed_on"].strftime("%m/%d/%Y")}

    stats = deliver_pending(ledger, cebroker)

    assert stats.delivered == 0
    assert cebroker_sandbox.active_rows() == {}
    assert {d["state"] for d in deliveries(ledger, "cebroker").values()} == {"sent"}


def test_given_the_export_command_when_run_then_exit_codes_say_written_nothing_or_refused_and_no_pii_is_printed(
    ledger: Ledger,
    ledger_url: str,
    ama: AmaPraRegistry,
    ama_sandbox: AmaSandbox,
    credits: Credits,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "cmesync.toml"
    config.write_text(
        f'ledger_url = "{ledger_url}"\n\n[[registries]]\nkind = "ama_pra"\nname = "ama-pra"\n'
        f'base_url = "{ama_sandbox.url}"\ntoken = "ama-demo-token"\n'
    )
    credits.seed(ledger, [credits.record(activity_id="ACT-002")], [ama])
    out = tmp_path / "pars.tsv"
    command = ["export", "pars", "--config", str(config), "--format", "tsv", "--out", str(out)]

    dry = main([*command, "--activity", "ACT-002", "--dry-run"])
    written = main([*command, "--activity", "ACT-002", "--json"])
    again = main(command)
    unknown = main([*command, "--activity", "NO-SUCH-ACTIVITY"])
    no_registry = main(["export", "cebroker", "--config", str(config), "--format", "tsv", "--out", str(out)])

    assert (dry, written, again, unknown, no_registry) == (0, 0, 1, 2, 2)
    assert len(tsv_rows(out, PARS_HEADER)) == 1
    shown = capsys.readouterr()
    assert '"records": 1' in shown.out
    assert not [p for p in PII if p in shown.out + shown.err]


def test_given_a_new_version_of_abp_moc_when_exported_then_no_delete_row_as_the_api_would_send_none(
    ledger: Ledger, ama: AmaPraRegistry, credits: Credits, tmp_path: Path
) -> None:
    diplomate = credits.physician | {"board": "ABP", "board_id": "ABP-88120", "moc_consent": True}
    abp = credits.record("ABIM_MOC", learner=diplomate, version=2, amount="1.00")
    abim = credits.record("ABIM_MOC", learner=diplomate | {"board": "ABIM", "board_id": "204518"}, version=2)
    credits.seed(ledger, [abp, abim], [ama])

    exported = export_pending(ledger, ama, tmp_path / "pars.xlsx", "xlsx")

    assert exported is not None and (exported.records, exported.rows) == (2, 3)
    actions = {(r["LearnerRecordAction"], r["CreditID"]) for r in xlsx_rows(tmp_path / "pars.xlsx")}
    assert actions == {
        ("add", f"ccid:{abp['record_id']}:2"),
        ("delete", f"ccid:{abim['record_id']}:1"),
        ("add", f"ccid:{abim['record_id']}:2"),
    }
