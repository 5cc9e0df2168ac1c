"""The embedded broker (Tansu on memory storage) killed and restarted: it comes back empty, its consumer group
offsets gone. The ledger knows what it produced and reconciled (`pipeline.stages.broker_loss`): the next run says the
broker lost data (exit 1, dead letters naming the window), rewinds the sources to what the
ledger holds, pulls the lost window again, rebuilds cme.credits.v1, and ends equal to the clean reference run,
with nothing duplicated. The run after it finds nothing lost and exits 0."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ledger import tables as t
from ledger.watermarks import Watermark
from pipeline.config import Settings
from pipeline.kafka.lag import PartitionLag
from pipeline.kafka.topics import ATTENDANCE_TOPIC
from pipeline.stages.broker_loss import REASON_CODES, _attendance_losses
from tests import in_process
from tests.faults.conftest import Outcome, RunResult, World
from tests.final_state import latest_per_key, ledger_latest, stream_messages

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def restart_broker(world: World) -> None:
    """Kill the broker and start it again on the same port: everything it held is forgotten."""
    world.broker.stop()
    world.broker.start()


def cmesync(world: World, *args: str) -> RunResult:
    """`cmesync recover` / `republish` in this process (no kill, no signal: no process of its own needed)."""
    done = in_process.cmesync(*args, "--config", str(world.config_path), "--json", env=world.env(None))
    return RunResult(done.returncode, done.stdout, done.stderr)


def broker_findings(world: World) -> list[tuple[str, str, bool]]:
    """(reason code, source_ref, resolved) of the broker-loss dead letters."""
    d = t.dead_letters.c
    with world.ledger.engine.connect() as conn:
        rows = conn.execute(select(d.reason_code, d.source_ref, d.resolved_at).where(d.reason_code.in_(REASON_CODES)))
        return sorted((r.reason_code, r.source_ref, r.resolved_at is not None) for r in rows)


def checkpoints(world: World) -> dict[str, str]:
    with world.ledger.engine.connect() as conn:
        return dict(conn.execute(select(t.checkpoints.c.source, t.checkpoints.c.cursor)).all())


def assert_failed_for_broker_loss(result: RunResult) -> None:
    assert result.returncode == 1, f"expected a failed run ({result.returncode}):\n{result.stderr[-3000:]}"
    assert "BrokerDataLost" in result.stderr and "cme.attendance.v1[0]" in result.stderr


def test_given_a_broker_restarted_between_two_runs_when_rerun_then_it_fails_and_rebuilds_the_credit_stream(
    world: World, reference: Outcome
) -> None:
    world.run().counts()
    restart_broker(world)

    rerun = world.run()

    assert_failed_for_broker_loss(rerun)
    assert "cme.credits.v1[0] ends at 0" in rerun.stderr
    findings = broker_findings(world)
    assert {code for code, _, _ in findings} == {"TOPIC_BEHIND", "CREDIT_STREAM_BEHIND"}
    assert all(resolved for _, _, resolved in findings), "the run converged: its findings are resolved"
    assert world.settle() == reference
    after = world.run().counts()
    assert (after["credit_versions"], after["delivered"], after["credits_published"]) == (0, 0, 0)
    assert world.settle() == reference


def test_given_a_broker_restarted_mid_reconcile_when_rerun_then_the_lost_window_is_pulled_again(
    world: World, reference: Outcome
) -> None:
    assert world.run(crash_at="intake.committed:2").killed
    restart_broker(world)

    rerun = world.run()

    assert_failed_for_broker_loss(rerun)
    (finding,) = broker_findings(world)
    assert finding[:2] == ("TOPIC_BEHIND", f"partition 0 offsets 50..{finding[1].rsplit('..', 1)[1]}")
    assert world.settle() == reference
    world.run().counts()
    assert world.settle() == reference


def test_given_a_broker_restarted_mid_reconcile_when_recover_dry_run_then_it_shows_the_rewind_and_changes_nothing(
    world: World, reference: Outcome
) -> None:
    assert world.run(crash_at="intake.committed:2").killed
    restart_broker(world)
    cursors = checkpoints(world)

    dry = cmesync(world, "recover", "--dry-run")

    assert dry.returncode == 1, dry.stderr[-2000:]
    shown = json.loads(dry.stdout)
    (loss,) = shown["losses"]
    assert (loss["topic"], loss["reason_code"], loss["lost_from"], loss["broker_end"]) == (
        "cme.attendance.v1",
        "TOPIC_BEHIND",
        50,  # two batches of 25 were reconciled before the kill
        0,
    )
    rewound = {r["source"]: r for r in shown["rewinds"]}
    assert set(rewound) == {s.name for s in Settings.load(world.config_path).sources}
    assert not rewound["lms-xapi"]["rewound_to_beginning"], "the xAPI pages before offset 50 are in the ledger"
    assert all(r["rewound_to_beginning"] for name, r in rewound.items() if name != "lms-xapi")
    assert checkpoints(world) == cursors and broker_findings(world) == []

    done = cmesync(world, "recover")

    assert done.returncode == 0, done.stderr[-2000:]
    assert set(checkpoints(world)) == {"lms-xapi"} and checkpoints(world) != cursors
    assert [code for code, _, resolved in broker_findings(world) if not resolved] == ["TOPIC_BEHIND"]
    assert cmesync(world, "recover", "--dry-run").returncode == 0, "recovered: nothing more to rewind"
    world.run().counts()
    assert world.settle() == reference


def test_republish_rebuilds_the_credit_stream_from_the_ledger(world: World) -> None:
    world.run().counts()
    settings = Settings.load(world.config_path)
    latest = ledger_latest(world.ledger)
    restart_broker(world)

    dry = cmesync(world, "republish", "--dry-run")
    assert (dry.returncode, json.loads(dry.stdout)) == (0, {"dry_run": True, "records": len(latest)})
    assert stream_messages(world.broker.bootstrap, settings) == []
    none_since = cmesync(world, "republish", "--since", "2999-01-01", "--dry-run")
    assert json.loads(none_since.stdout)["records"] == 0

    done = cmesync(world, "republish")

    assert (done.returncode, json.loads(done.stdout)) == (0, {"dry_run": False, "records": len(latest)})
    stream = stream_messages(world.broker.bootstrap, settings)
    assert len(stream) == len(latest), "one message per record: the latest version"
    assert {rid: r["version"] for rid, r in latest_per_key(stream).items()} == {
        rid: r["version"] for rid, r in latest.items()
    }


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (PartitionLag(ATTENDANCE_TOPIC, 0, 100, 0, 120), []),  # intact, reconciler at the ledger's offset
        (PartitionLag(ATTENDANCE_TOPIC, 0, 90, 0, 120), []),  # killed between ledger commit and offset commit
        (PartitionLag(ATTENDANCE_TOPIC, 0, None, 0, 0), [("TOPIC_BEHIND", 100, 120)]),  # restarted empty
        (PartitionLag(ATTENDANCE_TOPIC, 0, 100, 110, 120), [("LOG_START_PAST_LEDGER", 100, 110)]),  # retention
        (PartitionLag(ATTENDANCE_TOPIC, 0, None, 0, 120), [("GROUP_OFFSETS_GONE", 100, 100)]),  # group expired
        (PartitionLag(ATTENDANCE_TOPIC, 0, None, 120, 120), [("LOG_START_PAST_LEDGER", 100, 120)]),  # all expired
    ],
)
def test_broker_loss_rules(held: PartitionLag, expected: list[tuple[str, int, int]]) -> None:
    """The ledger produced offsets 0..119 and reconciled 0..99 of partition 0; the broker now holds `held`."""
    losses, _ = _attendance_losses({0: Watermark(produced_end=120, reconciled_end=100)}, {0: held})

    assert [(loss.reason_code, loss.lost_from, loss.lost_to) for loss in losses] == expected
