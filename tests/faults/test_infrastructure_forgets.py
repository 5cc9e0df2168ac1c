"""Infrastructure that overlaps, goes away or forgets (issue #16): two `cmesync run`s started together on one
ledger, a registry down during delivery, a registry restarted empty mid-run. The stated behaviour: one run at a
time (the other refused, naming the holder, exit 1); unavailable-registry failures sent again by the next night
without a replay; a registry that forgot re-registered and re-filled before anything is called rejected. Each
ends as the clean run does: ledger, every registry's holdings, the HR export rows, nothing twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, make_url, select

from deploy.sandbox.base import Faults
from ledger import tables as t
from tests.faults.conftest import Outcome, World
from tests.ops.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

REFUSED = re.compile(
    r"refused: the ledger \S+ is in use by run (?P<run_id>\S+) \(nightly\) on host \S+, pid (?P<pid>\d+), "
    r"started \S+; not started"
)
# Two HTTP attempts per call: each refused call costs a fraction of a second, not the default's ~6 s of backoff,
# so a six-request outage fails three calls per registry — the shape of a 20 s outage at the default settings.
OUTAGE_REQUESTS = 6


def deliver_dead_letters(world: World, *, resolved: bool | None = None) -> list[tuple[str, str]]:
    """(registry, reason code) of the deliver-stage dead letters, optionally only (un)resolved ones."""
    dl = t.dead_letters.c
    query = select(dl.registry, dl.reason_code).where(dl.stage == "deliver")
    if resolved is not None:
        query = query.where(dl.resolved_at.is_not(None) if resolved else dl.resolved_at.is_(None))
    with world.ledger.engine.connect() as conn:
        return [(r.registry, r.reason_code) for r in conn.execute(query)]


def lock_held(world: World) -> bool:
    """Whether a run holds the ledger, read from the holder's description only: probing the lock itself
    would, for that instant, hold it and refuse the very run under test."""
    url = make_url(world.ledger_url)
    if url.get_backend_name() == "postgresql":
        with world.ledger.engine.connect() as conn:
            if not inspect(conn).has_table("run_lock_holders"):
                return False
            return conn.execute(select(t.run_lock_holders.c.pid)).first() is not None
    lock_file = Path(f"{url.database}.lock")
    return lock_file.exists() and lock_file.stat().st_size > 0


@pytest.mark.dialect
def test_given_two_runs_started_together_when_they_meet_then_one_is_refused_and_the_other_ends_as_the_clean_run(
    world: World, reference: Outcome
) -> None:
    # A slow registry keeps the first run holding the ledger for longer than the second takes to start, however
    # loaded the machine: without it, a second run that starts late finds the first gone and both succeed.
    world.stack.ama.faults = Faults(slow=1.0, slow_s=1.0)
    first = world.start()
    wait_for(lambda: lock_held(world) or first.poll() is not None, "the first run to take the ledger")
    second = world.start()
    results = {first.pid: world.finish(first), second.pid: world.finish(second)}
    world.stack.ama.faults = Faults()

    refused = {pid: r for pid, r in results.items() if r.returncode != 0}
    assert len(refused) == 1, {pid: (r.returncode, r.stderr[-2000:]) for pid, r in results.items()}
    [(refused_pid, refusal)] = refused.items()
    [(holder_pid, finished)] = ((pid, r) for pid, r in results.items() if pid != refused_pid)
    assert refusal.returncode == 1, refusal.stderr[-3000:]
    line = REFUSED.search(refusal.stderr)
    assert line, refusal.stderr[-3000:]
    assert int(line["pid"]) == holder_pid
    assert re.search(r"Finished in state Failed\(.*in use by run", refusal.stderr), "the refused flow run did not fail"
    assert finished.counts()["delivered"] > 0
    outcome = world.settle()
    assert outcome == reference
    assert outcome.exported == reference.exported


def test_given_the_registries_down_during_delivery_when_the_next_night_runs_then_it_repairs_without_a_replay(
    world: World, reference: Outcome
) -> None:
    world.write_config(max_attempts=2)
    registries = (world.stack.ama, world.stack.cebroker, world.stack.hr)
    for sandbox in registries:
        sandbox.faults = Faults(down=OUTAGE_REQUESTS)

    night = world.run()
    assert night.returncode in (0, 1), night.stderr[-3000:]  # done; whether "some failed" is exit 1 is not ours
    for sandbox in registries:
        assert sandbox.faults.injected["unavailable"] == OUTAGE_REQUESTS, f"{sandbox.name} was never down"
    unavailable = {registry for registry, reason in deliver_dead_letters(world) if reason == "REGISTRY_UNAVAILABLE"}
    assert unavailable == {"ama-pra", "cebroker", "employer-hr"}, "the outage failed no delivery"

    next_night = world.run().counts()

    assert next_night["delivery_failed"] == 0 and next_night["delivered"] > 0
    assert deliver_dead_letters(world, resolved=False) == []
    outcome = world.settle()
    assert outcome == reference
    assert outcome.exported == reference.exported


def test_given_the_ama_registry_restarted_empty_mid_run_when_the_run_goes_on_then_it_re_registers_and_re_fills(
    world: World, reference: Outcome
) -> None:
    ama = world.stack.ama
    # Each AMA call takes 0.1 s, so the restart lands while the run is still sending to it.
    ama.faults = Faults(slow=1.0, slow_s=0.1)
    run = world.start()
    wait_for(lambda: len(ama.accepted) >= 8, "the AMA delivery to be under way", every_s=0.02)
    ama.stop()
    lost = len(ama.holdings())
    ama.lose_everything()
    ama.start()
    result = world.finish(run)

    assert result.returncode == 0, result.stderr[-3000:]
    assert lost >= 8
    assert not [d for d in deliver_dead_letters(world) if d == ("ama-pra", "REGISTRY_REJECTED")], (
        "credits of activities the registry forgot were dead-lettered as rejected"
    )
    outcome = world.settle()
    assert outcome == reference
    assert outcome.exported == reference.exported
