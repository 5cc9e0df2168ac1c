"""Output an operator can trust (issue #14, items 5 to 8 less the stream contract): tables that fit 80 columns with
ids that work as input, `--format plain|tsv|json`, dead letters and replays that explain themselves, transcripts
by any id a report prints, and `run --json` naming the run. The real command in a subprocess after a real night
(broker, sandboxes, ledger on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from deploy.sandbox.base import Faults
from tests.ops.conftest import REPO, CliResult, Ops

pytestmark = pytest.mark.integration

TERMINAL = 80
ID_PREFIX = re.compile(r"^ ?([0-9a-f]{8}) ", re.MULTILINE)


def night(ops: Ops) -> dict[str, Any]:
    """A night whose registry answers every call with 503: failed deliveries beside the sample's dead letters.
    (The exit code of such a night is another change's business: only the document is read here.)"""
    ops.sandboxes.ama.faults = Faults(server_error=1.0)
    result = ops.cli("run", "--json")
    counts: dict[str, Any] = result.json()
    assert counts["delivery_failed"] > 0, result.stderr
    return counts


def narrow(ops: Ops, *args: str) -> CliResult:
    """The command as a person sees it in an 80-column terminal (or piped: rich's default width is 80 too)."""
    ops.env["COLUMNS"] = str(TERMINAL)
    try:
        return ops.cli(*args)
    finally:
        ops.env["COLUMNS"] = "200"


def assert_readable(result: CliResult, exit_code: int = 0) -> None:
    assert result.returncode == exit_code, result.stderr
    too_wide = [line for line in result.stdout.splitlines() if len(line) > TERMINAL]
    assert too_wide == []
    assert "…" not in result.stdout  # nothing cut short: an id or a status half-printed is useless


def test_given_a_night_with_failures_when_tables_are_printed_in_80_columns_then_they_fit_and_their_ids_work(
    ops: Ops,
) -> None:
    counts = night(ops)

    status = narrow(ops, "status")
    listing = narrow(ops, "deadletters", "list")
    dry = narrow(ops, "replay", "--dry-run")

    assert_readable(status, 1)  # the last night failed deliveries: status says so in its exit code
    for result in (listing, dry):
        assert_readable(result)
    assert counts["run_id"][:8] in status.stdout and counts["status"] in status.stdout
    printed = ID_PREFIX.findall(listing.stdout)
    everything = ops.cli("deadletters", "list", "--json").json()
    assert sorted(printed) == sorted(d["dead_letter_id"][:8] for d in everything)
    for prefix in printed:
        shown = ops.cli("deadletters", "show", prefix, "--json")
        assert shown.returncode == 0, shown.stderr
        assert shown.json()["dead_letter_id"].startswith(prefix)
    records = ID_PREFIX.findall(dry.stdout)
    assert len(records) == counts["delivery_failed"]
    one = ops.cli("replay", "--dry-run", "--record-id", records[0], "--json").json()["selected"]
    assert [s["record_id"][:8] for s in one] == [records[0]]


def test_given_a_night_when_tables_are_asked_for_as_tsv_or_json_then_scripts_get_full_values(ops: Ops) -> None:
    night(ops)

    tsv = ops.cli("deadletters", "list", "--format", "tsv")
    as_json = ops.cli("deadletters", "list", "--format", "json")
    status_tsv = ops.cli("status", "--format", "tsv")
    status_json = ops.cli("status", "--format", "json")
    replay_tsv = ops.cli("replay", "--dry-run", "--format", "tsv")
    replay_json = ops.cli("replay", "--dry-run", "--format", "json")

    assert tsv.returncode == 0, tsv.stderr
    header, *lines = tsv.stdout.splitlines()
    assert header.split("\t")[:3] == ["dead_letter_id", "stage", "reason_code"]
    rows = [line.split("\t") for line in lines]
    assert {r[0] for r in rows} == {d["dead_letter_id"] for d in as_json.json()}  # full ids, one per line
    assert all(len(r) == len(header.split("\t")) for r in rows)
    assert "# last runs" in status_tsv.stdout and status_json.json()["runs"][0]["flow"] == "nightly"
    replay_header, *replay_rows = replay_tsv.stdout.splitlines()
    assert replay_header.startswith("registry\trecord_id")
    selected = {s["record_id"] for s in replay_json.json()["selected"]}
    assert selected and {row.split("\t")[1] for row in replay_rows} == selected


def test_given_the_registry_still_fails_when_replaying_then_each_failure_says_why(ops: Ops) -> None:
    counts = night(ops)

    shown = narrow(ops, "replay")
    as_tsv = ops.cli("replay", "--format", "tsv")
    as_json = ops.cli("replay", "--json")

    assert shown.returncode == 1
    assert_readable(CliResult(shown.args, 0, shown.stdout, shown.stderr))
    squashed = re.sub(r"\s+", "", shown.stdout)  # the reason folds over lines in 80 columns
    assert "REGISTRY_UNAVAILABLE" in squashed and "->500" in squashed  # the sandbox answers 500
    [note] = [line.split("\t")[4] for line in as_tsv.stdout.splitlines()[1:]]
    assert note.startswith("REGISTRY_UNAVAILABLE: ") and "-> 500" in note
    [outcome] = as_json.json()["outcomes"]
    assert sum(outcome["reasons"].values()) == counts["delivery_failed"]
    assert all(reason.startswith("REGISTRY_UNAVAILABLE: ") for reason in outcome["reasons"])


def test_given_dead_letters_when_listed_limited_filtered_or_dry_run_then_the_counts_and_refusals_are_honest(
    ops: Ops,
) -> None:
    night(ops)
    unresolved = ops.cli("deadletters", "list", "--unresolved", "--json").json()

    limited = narrow(ops, "deadletters", "list", "--limit", "2")
    unknown = ops.cli("deadletters", "list", "--reason-code", "NOPE")
    unknown_replay = ops.cli("replay", "--reason-code", "NOPE", "--dry-run")
    retry = ops.cli("deadletters", "retry", "--stage", "deliver", "--dry-run", "--json")
    resolve = ops.cli("deadletters", "resolve", "--stage", "normalise", "--dry-run")

    assert f"2 of {len(unresolved)} dead letters" in limited.stdout
    for refused in (unknown, unknown_replay):
        assert refused.returncode == 2
        assert "unknown reason code NOPE" in refused.stderr and "REGISTRY_UNAVAILABLE" in refused.stderr
    assert retry.returncode == 0, retry.stderr
    planned = retry.json()["would_retry"]
    assert planned and {d["stage"] for d in planned} == {"deliver"}
    assert resolve.returncode == 0 and "would resolve" in resolve.stdout
    assert ops.cli("deadletters", "list", "--unresolved", "--json").json() == unresolved  # nothing changed
    assert len(ops.sandboxes.ama.accepted) == 0  # and nothing was sent


def test_given_the_schema_registry_is_gone_when_an_avro_dead_letter_is_revealed_then_it_is_decoded(
    ops: Ops,
) -> None:
    night(ops)
    [row] = ops.cli("deadletters", "list", "--stage", "reconcile", "--json").json()
    config = ops.config_path.read_text(encoding="utf-8")
    ops.config_path.write_text(
        re.sub(r'schema_registry_url = "[^"]*"', 'schema_registry_url = ""', config), encoding="utf-8"
    )

    revealed = ops.cli("deadletters", "show", row["dead_letter_id"][:8], "--reveal", "--json")

    assert revealed.returncode == 0, revealed.stderr
    event = json.loads(revealed.json()["payload"])
    assert event["source"] == "lms-xapi" and event["kind"] == "COMPLETED"
    assert row["source_ref"] == event["source_ref"]


def test_given_a_night_when_run_with_json_then_the_document_names_the_run_its_report_and_each_registry(
    ops: Ops,
) -> None:
    counts = night(ops)

    assert counts["status"] == "partial"  # failed deliveries: pipeline/outcome.py
    assert Path(counts["report_path"]).is_file() and counts["run_id"][:8] in counts["report_path"]
    ama = counts["registries"]["ama-pra"]
    assert (ama["delivered"], ama["failed"]) == (0, counts["delivery_failed"])
    assert ama["failed_awaiting_replay"] == counts["delivery_failed"]
    assert ama["registry_diff"] is not None
    status = ops.cli("status", "--json").json()
    assert status["runs"][0]["run_id"] == counts["run_id"]


def _readme_transcript_examples() -> list[list[str]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Transcripts and licence-cycle compliance", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].split(">", 1)[0].strip()
        if line.startswith("cmesync transcript"):
            commands.append(shlex.split(line)[1:])
    return commands


def test_given_a_night_when_the_readme_transcript_examples_run_then_they_show_the_learners_credits(
    ops: Ops,
) -> None:
    ops.sandboxes.ama.faults = Faults()
    assert ops.cli("run", "--json").returncode == 0
    examples = _readme_transcript_examples()
    assert len(examples) >= 4

    results = {" ".join(args): ops.cli(*args) for args in examples}

    for command, result in results.items():
        assert result.returncode in (0, 1), f"{command}: {result.stderr}"  # 2 would be "no such learner"
    [html_example] = [c for c in results if "--format html" in c]
    page = results[html_example].stdout
    assert "No credits in this cycle yet" not in page and "CME transcript — " in page
    assert re.search(r'aria-valuenow="([1-9]\d*)"', page)  # some requirement shows progress


def test_given_the_report_lists_learners_when_their_printed_ids_are_given_then_transcripts_answer(
    ops: Ops,
) -> None:
    ops.sandboxes.ama.faults = Faults()
    night_counts = ops.cli("run", "--json").json()
    markdown = Path(night_counts["report_path"]).read_text(encoding="utf-8")
    section = markdown.split("Licence-cycle compliance", 1)[1]
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]+)</td><td>([0-9a-f]{8})</td>.*?</tr>", section)
    assert rows, section[:2000]

    for employee, prefix in rows[:3]:
        by_prefix = ops.cli("transcript", prefix, "--json")
        by_employee = ops.cli("transcript", employee, "--json")
        assert by_prefix.returncode in (0, 1), by_prefix.stderr
        assert by_employee.returncode in (0, 1), by_employee.stderr
        learner = by_prefix.json()
        assert learner["learner_id"].startswith(prefix) and by_employee.json()["learner_id"] == learner["learner_id"]
        assert learner["name"]  # the learner's name from the ledger's profile
        assert learner["overdue"] == any(c["status"] == "overdue" for c in learner["cycles"])
