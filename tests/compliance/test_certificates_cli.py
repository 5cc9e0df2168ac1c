"""`cmesync certificates` as an operator runs it: the real command (in process) against the ledger (SQLite and
PostgreSQL); the PDFs read back with poppler's `pdftotext` and `pdftoppm` (`make poppler`)."""

from __future__ import annotations

import json
import subprocess
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from ledger.credits import store_credits
from pipeline.config import SAMPLE_DIR
from reconcile.catalog import Catalog, parse_catalog
from tests import in_process
from tests.compliance.conftest import NPI_A, NPI_C, World

pytestmark = pytest.mark.integration

NAME = {"given_name": "Amelia", "family_name": "Hartwell"}


def sample_catalog() -> Catalog:
    return parse_catalog(json.loads((SAMPLE_DIR / "catalog.json").read_text()))


def cmesync(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process.cmesync(*args, "--config", str(world.config_path))


def pdf_text(path: Path) -> str:
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split())


def named(world: World) -> None:
    """The learner's name in the ledger's profile, as the reconcile stage stores it."""
    with world.ledger.transaction() as conn:
        store_credits(conn, {world.learner_a: NAME}, [], [])


@pytest.fixture
def earned(world: World) -> World:
    named(world)
    world.credit(world.learner_a, "ACT-001", "1.50", date(2026, 11, 17))
    world.credit(world.learner_a, "ACT-004", "4.00", date(2026, 11, 20), "ANCC_CH")
    world.credit(world.learner_a, "ACT-004", "1.50", date(2026, 11, 20), "ANCC_PHARM")
    world.credit(world.learner_a, "ACT-004", "3.75", date(2026, 11, 20), "AANP_CH")
    return world


def test_given_awarded_credits_when_certificates_are_rendered_then_each_pdf_says_what_a_self_report_needs(
    earned: World, tmp_path: Path
) -> None:
    out = tmp_path / "certs"
    catalog = sample_catalog()

    result = cmesync(earned, "certificates", NPI_A, "--out", str(out), "--json")

    assert result.returncode == 0, result.stderr
    certificates = json.loads(result.stdout)["certificates"]
    by_type = {c["credits"][0]["credit_type"]: c for c in certificates}
    assert sorted(by_type) == ["AANP_CH", "AMA_PRA_1", "ANCC_CH"]  # the pharmacology portion rides on ANCC_CH
    assert by_type["ANCC_CH"]["credits"][0]["pharmacology"] == "1.50"
    nursing = pdf_text(Path(by_type["ANCC_CH"]["file"]))
    workshop = catalog.activities["ACT-004"]
    for expected in (
        "Certificate of Completion",
        "Amelia Hartwell",
        workshop.title,
        f"Provided by {workshop.provider}",
        "Completed on November 20, 2026",
        "ANCC contact hour(s) 4.00 1.50",
        "American Nurses Credentialing Center",
        by_type["ANCC_CH"]["certificate_id"],
    ):
        assert expected in nursing
    physician = pdf_text(Path(by_type["AMA_PRA_1"]["file"]))
    designated = catalog.activities["ACT-001"].designations["AMA_PRA_1"]
    assert f"designates this activity for a maximum of {designated:.2f} AMA PRA Category 1 Credit(s)" in physician
    assert catalog.activities["ACT-001"].title in physician and "Nurses Credentialing" not in physician
    assert "Pharmacology hours" in nursing and "Pharmacology hours" not in physician
    opens = catalog.activities["ACT-001"].window_start  # enduring: its dates are the accreditation window
    assert opens is not None and f"Available from {opens:%B} {opens.day}, {opens:%Y}" in physician
    first_session = workshop.local_day(workshop.sessions[0].start)  # live: its sessions' days
    assert f"{first_session:%B} {first_session.day}, {first_session:%Y}" in nursing
    assert {p.name for p in out.iterdir()} == {f"{c['certificate_id']}.pdf" for c in certificates}
    # The name is inside the PDF only: neither on the terminal nor in a file name.
    assert NAME["family_name"] not in result.stdout + result.stderr and NPI_A not in result.stdout + result.stderr


def test_given_a_certificate_when_its_page_is_rasterised_then_a_non_blank_png_comes_out(
    earned: World, tmp_path: Path
) -> None:
    result = cmesync(earned, "certificates", earned.learner_a[:8], "--activity", "ACT-001", "--out", str(tmp_path))
    [pdf] = [Path(line) for line in result.stdout.splitlines()]

    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)

    [png] = tmp_path.glob("page*.png")
    with Image.open(png) as page:
        grey = page.convert("L")
        width, height = grey.size
        dark = sum(grey.histogram()[:128])
    assert width > height  # landscape
    assert dark > width * height // 200  # text and rules, not an empty page


def test_given_an_activity_when_per_activity_is_asked_then_one_pdf_holds_its_credits_and_renders_identically(
    earned: World, tmp_path: Path
) -> None:
    args = ("certificates", NPI_A, "--activity", "ACT-004", "--per-activity", "--out", str(tmp_path), "--json")

    first = cmesync(earned, *args)
    pdf = Path(json.loads(first.stdout)["certificates"][0]["file"])
    before = pdf.read_bytes()
    again = cmesync(earned, *args)

    assert first.returncode == again.returncode == 0, first.stderr
    [certificate] = json.loads(first.stdout)["certificates"]
    assert [c["credit_type"] for c in certificate["credits"]] == ["AANP_CH", "ANCC_CH"]
    text = pdf_text(pdf)
    assert "AANP contact hour(s) 3.75" in text and "ANCC contact hour(s) 4.00 1.50" in text
    assert "American Association of Nurse Practitioners" in text
    assert pdf.read_bytes() == before


def test_given_a_configured_statement_when_rendered_then_it_replaces_the_default(earned: World, tmp_path: Path) -> None:
    with earned.config_path.open("a") as config:
        config.write('\n[certificates]\nstatements = { ANCC = "Approved by {provider} under ANCC provider P-0042." }\n')

    result = cmesync(earned, "certificates", NPI_A, "--activity", "ACT-004", "--out", str(tmp_path), "--json")

    assert result.returncode == 0, result.stderr
    files = {c["credits"][0]["credit_type"]: c["file"] for c in json.loads(result.stdout)["certificates"]}
    provider = sample_catalog().activities["ACT-004"].provider
    text = pdf_text(Path(files["ANCC_CH"]))
    assert f"Approved by {provider} under ANCC provider P-0042." in text
    assert "Commission on Accreditation" not in text


def test_given_certificates_when_the_transcript_page_is_rendered_then_it_names_each_credits_certificate(
    earned: World, tmp_path: Path
) -> None:
    certificates = cmesync(earned, "certificates", NPI_A, "--out", str(tmp_path), "--json")
    page = cmesync(earned, "transcript", NPI_A, "--as-of", "2026-11-23", "--format", "html")
    data = cmesync(earned, "transcript", NPI_A, "--as-of", "2026-11-23", "--json")

    written = json.loads(certificates.stdout)["certificates"]
    for certificate in written:
        assert f'href="{certificate["certificate_id"]}.pdf"' in page.stdout
    listed = {
        c["activity_id"]: c["certificate_file"] for cycle in json.loads(data.stdout)["cycles"] for c in cycle["credits"]
    }
    assert set(listed.values()) <= {Path(c["file"]).name for c in written} and listed


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("nobody@example.org",), 2, "no learner in the ledger or on the roster"),
        ((NPI_A, "--activity", "ACT-404"), 2, "no activity 'ACT-404' in the catalog"),
        ((NPI_A, "--activity", "ACT-002"), 1, "no awarded credit for activity 'ACT-002'"),
        ((NPI_C,), 1, "no credits in the ledger yet"),
    ],
)
def test_given_nothing_to_certify_or_an_unknown_name_when_asked_then_the_exit_code_says_which(
    earned: World, tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = cmesync(earned, "certificates", *args, "--out", str(tmp_path / "out"))

    assert (result.returncode, result.stdout) == (code, "")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_given_nothing_to_certify_when_asked_for_json_then_stdout_holds_an_empty_list(
    earned: World, tmp_path: Path
) -> None:
    result = cmesync(earned, "certificates", NPI_C, "--out", str(tmp_path), "--json")

    assert result.returncode == 1
    assert json.loads(result.stdout) == {"certificates": []}


def test_given_a_statement_with_an_unknown_placeholder_when_run_then_configuration_error_exit_2(
    earned: World, tmp_path: Path
) -> None:
    with earned.config_path.open("a") as config:
        config.write('\n[certificates]\nstatements = { ANCC = "Approved by {provder}." }\n')

    result = cmesync(earned, "certificates", NPI_A, "--out", str(tmp_path))

    assert result.returncode == 2
    assert "statement ANCC: unknown placeholder(s) provder" in result.stderr


def test_given_a_pharmacology_portion_without_its_contact_hours_when_rendered_then_it_is_printed_on_its_own(
    world: World, tmp_path: Path
) -> None:
    world.credit(world.learner_a, "ACT-007", "2.00", date(2026, 11, 20), "ANCC_PHARM")

    result = cmesync(world, "certificates", NPI_A, "--out", str(tmp_path), "--json")

    assert result.returncode == 0, result.stderr
    [certificate] = json.loads(result.stdout)["certificates"]
    assert [(c["credit_type"], c["amount"]) for c in certificate["credits"]] == [("ANCC_PHARM", "2.00")]
    assert "pharmacotherapeutic contact hour(s) 2.00" in pdf_text(Path(certificate["file"]))
