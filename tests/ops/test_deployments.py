"""deploy/prefect.yaml as Prefect itself reads it (`prefect deploy`), and as `cmesync serve` serves it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.responses import DeploymentResponse
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from flows.deployments import DeploymentFileError, runner_deployments
from ledger.store import Ledger
from tests.ops.conftest import CMESYNC, REPO, Ops, wait_for

pytestmark = pytest.mark.integration

NIGHTLY = "nightly-reconciliation/nightly"
REPLAY = "replay-failed-syncs/replay"
STREAM = "stream-reconciliation/stream"


def read_deployment(name: str) -> DeploymentResponse | None:
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None


def cron_of(deployment: DeploymentResponse) -> list[tuple[Any, ...]]:
    return [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules]  # type: ignore[union-attr]


def deploy_all(prefect_file: Path) -> subprocess.CompletedProcess[str]:
    """`prefect deploy --all --prefect-file …` from the repository root, against the harness's server."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    command = [str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy", "--all"]
    return subprocess.run(
        [*command, "--prefect-file", str(prefect_file)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_given_prefect_yaml_when_prefects_deploy_machinery_reads_it_then_the_three_deployments_exist_as_written(
    prefect_harness: None,
) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="cmesync", type="process"))

    deployed = deploy_all(Path("deploy/prefect.yaml"))

    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]

    nightly, replay, stream = (read_deployment(name) for name in (NIGHTLY, REPLAY, STREAM))
    assert nightly and replay and stream
    assert cron_of(nightly) == [("30 2 * * *", "America/New_York", True)]
    assert cron_of(replay) == cron_of(stream) == []
    assert {d.work_pool_name for d in (nightly, replay, stream)} == {"cmesync"}
    assert (nightly.work_queue_name, replay.work_queue_name, stream.work_queue_name) == ("nightly", "ops", "stream")
    assert nightly.entrypoint == "flows.nightly:nightly_reconciliation"
    assert replay.parameters["dry_run"] is False
    assert set(replay.parameter_openapi_schema["properties"]) >= {"registries", "since", "record_ids", "dry_run"}
    assert stream.parameters == {"config_path": None, "delivery_interval_s": 5.0}
    assert nightly.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/cmesync"}}]
    assert [d.global_concurrency_limit.limit for d in (nightly, replay, stream)] == [1, 1, 1]  # type: ignore[union-attr]


def test_given_the_deployments_file_when_loaded_for_serve_then_it_yields_the_same_three_deployments() -> None:
    deployments = {d.name: d for d in runner_deployments()}

    assert set(deployments) == {"nightly", "replay", "stream"}
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployments["nightly"].schedules] == [  # type: ignore[union-attr]
        ("30 2 * * *", "America/New_York")
    ]
    assert deployments["replay"].parameters["dry_run"] is False
    with pytest.raises(DeploymentFileError, match="no deployment nope"):
        runner_deployments(only=("nope",))


def test_given_cmesync_serve_when_the_replay_deployment_is_run_then_it_completes_and_sigterm_stops_serve(
    ops: Ops,
) -> None:
    with Ledger(ops.ledger_url) as migrated:
        migrated.migrate()
    serve = subprocess.Popen(
        [*CMESYNC, "serve", "--only", "nightly", "--only", "replay"],
        cwd=REPO,
        env=ops.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        nightly = wait_for(lambda: read_deployment(NIGHTLY), "serve to register the nightly deployment")
        wait_for(lambda: read_deployment(REPLAY), "serve to register the replay deployment")

        run = run_deployment(REPLAY, parameters={"config_path": str(ops.config_path), "dry_run": True}, timeout=180)

        serve.send_signal(signal.SIGTERM)
        _, stderr = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()

    assert cron_of(nightly) == [("30 2 * * *", "America/New_York", True)]
    assert run.state is not None and run.state.is_completed(), run.state
    assert serve.returncode == 0, stderr
