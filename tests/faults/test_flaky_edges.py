"""Edges that misbehave without going away: registries failing 30 % of requests with 5xx plus a storm of 429s
with Retry-After, and sources repeating and reordering pages, with the same CSV file dropped twice under two
names. The run absorbs them (HTTP retries, idempotent registry calls, dedupe by event key) and ends as the clean
run does."""

from __future__ import annotations

import shutil

import pytest

from deploy.sandbox.base import Faults
from tests.faults.conftest import Outcome, World

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_given_registries_failing_30_percent_and_a_429_storm_when_the_run_delivers_then_it_ends_as_the_clean_run(
    world: World, reference: Outcome
) -> None:
    # 0.3 ** 10: no call of this run runs out of attempts. The faults come per request, not per second, so a
    # short first backoff (10 ms, doubling) meets the same ones as the default 0.2 s, without ~20 s of sleeping.
    world.write_config(max_attempts=10, retry_backoff_s=0.01)
    registries = (world.stack.ama, world.stack.cebroker, world.stack.hr)
    for seed, sandbox in enumerate(registries):
        sandbox.faults = Faults(server_error=0.3, storm=8, retry_after_s=0.2, seed=seed)

    counts = world.run().counts()

    assert counts["delivery_failed"] == 0 and counts["delivered"] > 0
    for sandbox in registries:
        assert sandbox.faults.injected["rate_limited"] == 8, f"{sandbox.name}: the storm did not blow"
        assert sandbox.faults.injected["server_error"] > 0, f"{sandbox.name}: no 5xx was injected"
    assert world.settle() == reference


def test_given_sources_repeating_and_reordering_pages_and_a_csv_dropped_twice_when_pulled_then_nothing_counts_twice(
    world: World, reference: Outcome
) -> None:
    world.stack.lrs.repeated_per_page = 3
    world.write_config(provider_pagination="page")
    world.stack.provider_rest.pagination = "page"
    world.stack.provider_rest.shuffle_seed = 5
    world.stack.provider_rest.repeated_per_page = 2
    drops = world.stack.file_drop.directory
    first = sorted(drops.glob("*.csv"))[0]
    shutil.copy(first, drops / f"copy of {first.name}")

    counts = world.run().counts()

    assert counts["duplicates"] > 0, "the repeated records reached the reconcile stage"
    assert world.settle() == reference
