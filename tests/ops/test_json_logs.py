"""`[logging] format = "json"` (or `--log-format json`): a nightly run's stderr is one JSON object per line, each
with its timestamp, level and logger, and the run, stage, source or registry and counts where known; no PII."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.ops.conftest import Ops
from tests.ops.test_metrics import add_config
from tests.security.test_pii_log_scan import decoded_json_logs, find_leaks, pii_needles, secret_needles

pytestmark = pytest.mark.integration


def entries_of(stderr: str) -> list[dict[str, Any]]:
    lines = stderr.splitlines()
    assert lines, "nothing logged"
    return [json.loads(line) for line in lines]  # every line parses, or the test fails here


def test_given_logging_format_json_in_the_config_when_a_run_logs_then_every_line_is_an_object_with_context(
    ops: Ops,
) -> None:
    add_config(ops, '\n[logging]\nformat = "json"\n')
    run = ops.cli("run", "--json")
    assert run.returncode == 0, run.stderr
    result = run.json()
    entries = entries_of(run.stderr)

    assert all({"timestamp", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert {entry["run_id"] for entry in entries if "run_id" in entry} == {result["run_id"]}
    [pulled] = [e for e in entries if e["logger"] == "pipeline.stages.pull" and e.get("source") == "lms-xapi"]
    assert pulled["stage"] == "pull"
    assert pulled["counts"]["records"] == result["records_read"]
    assert pulled["counts"]["events"] == result["events_published"]
    [delivered] = [e for e in entries if e.get("stage") == "deliver" and e.get("registry") == "ama-pra"]
    assert delivered["counts"]["delivered"] == result["delivered"] > 0
    reconciled = [e for e in entries if e.get("stage") == "reconcile" and "counts" in e]
    assert reconciled[-1]["counts"]["credit_versions"] == result["credit_versions"]
    # The pull task's own lines (Prefect's task run logger) name the same stage and source.
    assert any(
        e["logger"] == "prefect.task_runs" and e.get("stage") == "pull" and e.get("source") == "lms-xapi"
        for e in entries
    )
    [final] = [e for e in entries if e["logger"] == "prefect.flow_runs" and e.get("counts")]
    assert final["counts"] == {k: result[k] for k in final["counts"]}
    needles = [*pii_needles(), *secret_needles()]
    assert find_leaks(run.stderr, needles) == find_leaks(decoded_json_logs(run.stderr), needles) == []


def test_given_a_json_config_when_a_command_fails_then_its_error_is_a_json_line_unless_the_flag_says_text(
    ops: Ops,
) -> None:
    add_config(ops, '\n[logging]\nformat = "json"\n')
    failed = ops.cli("deadletters", "show", "no-such-id")
    assert failed.returncode == 2
    [entry] = entries_of(failed.stderr)
    assert (entry["logger"], entry["level"]) == ("cmesync.cli", "ERROR")
    assert "no-such-id" in entry["message"]

    as_text = ops.cli("deadletters", "show", "no-such-id", "--log-format", "text")
    assert as_text.returncode == 2
    assert "no-such-id" in as_text.stderr and not as_text.stderr.lstrip().startswith("{")
