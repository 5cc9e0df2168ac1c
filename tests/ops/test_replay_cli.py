"""The morning after a failed night, through the real command: a nightly run against a registry answering 500 to
everything, then `deadletters list`, `replay --dry-run`, `replay`, `status` — every credit delivered exactly
once, the dead letters resolved."""

from __future__ import annotations

from collections import Counter

import pytest

from deploy.sandbox.base import Faults
from tests.ops.conftest import Ops

pytestmark = pytest.mark.integration


def accepted_keys(ops: Ops) -> Counter[str]:
    return Counter(item["idempotency_key"] for item in ops.sandboxes.ama.accepted)


def nightly_report(ops: Ops, run_id: str) -> str:
    """The night's report, as the Prefect artifact and as the HTML file; both must exist and agree."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        # The REST call itself: under the FastAPI pinned here the server refuses the nulls Prefect's
        # `read_artifacts` sends for filters left out (422), and empty run filters match no flow-level artifact.
        artifacts = client.request(
            "POST",
            "/artifacts/filter",
            json={
                "artifacts": {"key": {"any_": ["nightly-reconciliation-summary"]}, "flow_run_id": {"any_": [run_id]}},
                "limit": 10,
                "offset": 0,
                "sort": "CREATED_DESC",
            },
        ).json()
    [markdown] = [a["data"] for a in artifacts if run_id in a["data"]]
    [html_file] = ops.reports_dir.glob(f"nightly-*-{run_id[:8]}.html")
    page = html_file.read_text(encoding="utf-8")
    assert "<h2>Per registry</h2>" in page and "<td>ama-pra</td>" in page and str(html_file) in markdown
    assert 'data-chart="trend"' in page and "## At a glance" in markdown
    return markdown


def test_given_a_night_when_the_registry_failed_every_call_then_replay_delivers_every_credit_once(ops: Ops) -> None:
    ops.sandboxes.ama.faults = Faults(server_error=1.0)

    night = ops.cli("run", "--json")

    assert night.returncode == 1, night.stderr  # a night with failed deliveries ends partial (pipeline/outcome.py)
    counts = night.json()
    failed = counts["delivery_failed"]
    assert failed > 0
    assert counts["delivered"] == 0
    assert len(ops.sandboxes.ama.accepted) == 0

    listing = ops.cli("deadletters", "list", "--stage", "deliver", "--unresolved", "--json")
    assert listing.returncode == 0, listing.stderr
    dead = listing.json()
    assert len(dead) == failed
    assert {(d["registry"], d["reason_code"]) for d in dead} == {("ama-pra", "REGISTRY_UNAVAILABLE")}
    assert all("payload" not in d for d in dead)

    dry = ops.cli("replay", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = dry.json()["selected"]
    assert len(planned) == failed
    assert {(p["registry"], p["state"]) for p in planned} == {("ama-pra", "failed")}
    assert all(p["reason_codes"] == ["REGISTRY_UNAVAILABLE"] for p in planned)
    assert len(ops.sandboxes.ama.accepted) == 0  # a dry run sends nothing

    ops.sandboxes.ama.faults = Faults()
    replayed = ops.cli("replay", "--json")

    assert replayed.returncode == 0, replayed.stderr
    outcome = replayed.json()["outcomes"]
    assert [(o["registry"], o["selected"], o["delivered"], o["failed"]) for o in outcome] == [
        ("ama-pra", failed, failed, 0)
    ]
    keys = accepted_keys(ops)
    assert len(keys) == failed and max(keys.values()) == 1
    assert {f"{p['record_id']}:{p['version']}" for p in planned} == set(keys)

    status = ops.cli("status", "--json")
    assert status.returncode == 0, status.stderr
    report = status.json()
    assert report["deliveries"] == {"ama-pra": {"sent": failed}}
    assert {d["stage"] for d in report["unresolved_dead_letters"]} <= {"normalise", "reconcile"}
    assert report["consumer_lag"] and all(p["lag"] == 0 for p in report["consumer_lag"])
    assert report["runs"][0]["flow"] == "nightly" and report["runs"][0]["status"] == "partial"
    night_report = nightly_report(ops, report["runs"][0]["run_id"])
    assert f"| ama-pra | 0 | {failed} |" in night_report  # delivered 0, failed all, as the night saw it
    assert "| deliver | REGISTRY_UNAVAILABLE |" in night_report
    assert night_report.startswith(f"🟠 **PARTIAL: ama-pra: {failed} deliveries failed; ")
    assert f"| ama-pra | 0 | {failed} | 0 |" in night_report  # at a glance: sent, failed, pending now
    assert ops.cli("deadletters", "list", "--stage", "deliver", "--unresolved", "--json").json() == []

    again = ops.cli("replay", "--json")
    one = ops.cli("replay", "--record-id", planned[0]["record_id"], "--json")

    assert again.returncode == 0 and again.json()["selected"] == []
    assert one.returncode == 0, one.stderr
    assert [(o["selected"], o["delivered"]) for o in one.json()["outcomes"]] == [(1, 1)]
    assert accepted_keys(ops) == keys  # the registry answered "duplicate": nothing was added twice

    shared = Counter(rid[0] for rid in {p["record_id"] for p in planned}).most_common(1)[0]
    assert shared[1] > 1, "more than 16 record ids always share a first hex digit"
    ambiguous = ops.cli("replay", "--record-id", shared[0], "--dry-run", "--json")
    assert ambiguous.returncode == 2
    assert f"--record-id {shared[0]} matches {shared[1]} records" in ambiguous.stderr


def test_given_the_registry_still_fails_when_replaying_then_exit_code_1_and_the_dead_letters_stay_open(
    ops: Ops,
) -> None:
    ops.sandboxes.ama.faults = Faults(server_error=1.0)
    night = ops.cli("run", "--json")
    assert night.returncode == 1, night.stderr
    failed = night.json()["delivery_failed"]

    replayed = ops.cli("replay", "--registry", "ama-pra", "--reason-code", "REGISTRY_UNAVAILABLE", "--json")

    assert replayed.returncode == 1, replayed.stderr
    outcome = replayed.json()["outcomes"][0]
    assert (outcome["selected"], outcome["delivered"], outcome["failed"]) == (failed, 0, failed)
    assert len(outcome["failed_records"]) == failed
    still_open = ops.cli("deadletters", "list", "--stage", "deliver", "--unresolved", "--json").json()
    assert len(still_open) == failed
    assert all(d["attempts"] == 2 for d in still_open)
    assert len(ops.sandboxes.ama.accepted) == 0


def test_given_filters_matching_nothing_when_replaying_then_nothing_is_sent_and_exit_code_0(ops: Ops) -> None:
    ops.sandboxes.ama.faults = Faults(server_error=1.0)
    assert ops.cli("run", "--json").returncode == 1

    by_reason = ops.cli("replay", "--reason-code", "REGISTRY_REJECTED", "--json")
    by_learner = ops.cli("replay", "--learner", "no-such-learner", "--json")
    by_time = ops.cli("replay", "--until", "2000-01-01", "--json")

    for result in (by_reason, by_learner, by_time):
        assert result.returncode == 0, result.stderr
        assert result.json()["selected"] == []
    assert len(ops.sandboxes.ama.accepted) == 0


@pytest.mark.parametrize(
    "args",
    [
        ("replay", "--registry", "no-such-registry"),
        ("replay", "--since", "yesterday-ish"),
        ("replay", "--since", "2026-11-20", "--until", "2026-11-19"),
        ("deadletters", "show", "ffffffff-not-an-id"),
        ("deadletters", "retry"),
    ],
)
def test_given_bad_arguments_when_running_an_ops_command_then_exit_code_2_with_a_reason(
    ops: Ops, args: tuple[str, ...]
) -> None:
    result = ops.cli(*args)

    assert result.returncode == 2
    assert "error" in result.stderr.lower()


def test_given_a_board_rejecting_what_pars_accepted_when_the_data_is_fixed_then_replay_sends_it_once(
    ops: Ops,
) -> None:
    first = ops.cli("run", "--json")
    assert first.returncode == 0, first.stderr
    victim_id, victim = sorted(ops.sandboxes.ama.holdings().items())[0]
    learner_id = victim.get("npi") or victim.get("board_id")
    ops.sandboxes.ama.board_rejects[learner_id] = "Board ID and name do not match"

    night = ops.cli("run", "--json")

    assert night.returncode == 1, night.stderr  # a board's rejection is a failed delivery: the night is partial
    rejected = night.json()["delivery_failed"]
    assert rejected >= 1
    dead = ops.cli("deadletters", "list", "--stage", "deliver", "--unresolved", "--json").json()
    assert {(d["registry"], d["reason_code"]) for d in dead} == {("ama-pra", "REGISTRY_REJECTED")}
    assert len(dead) == rejected
    assert all(d["reason"] == "rejected by the board: Board ID and name do not match" for d in dead)
    assert learner_id not in night.stdout + night.stderr

    ops.sandboxes.ama.board_rejects.clear()  # the office fixed the learner's data with the board
    replayed = ops.cli("replay", "--reason-code", "REGISTRY_REJECTED", "--json")

    assert replayed.returncode == 0, replayed.stderr
    [outcome] = replayed.json()["outcomes"]
    assert (outcome["registry"], outcome["delivered"], outcome["failed"]) == ("ama-pra", rejected, 0)
    assert ops.cli("deadletters", "list", "--stage", "deliver", "--unresolved", "--json").json() == []
    adds = Counter(credit_id for action, credit_id in ops.sandboxes.ama.learner_actions if action == "add")
    assert adds[f"ccid:{victim_id}:{victim['version']}"] == 2  # added, rejected by the board, added once more
    assert ops.sandboxes.ama.holdings()[victim_id]["status"] == "AWARDED"
