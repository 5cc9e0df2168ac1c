"""The deployments of deploy/prefect.yaml as runner deployments, so `cmesync serve` serves exactly what
`prefect deploy --prefect-file deploy/prefect.yaml` deploys — one definition, two ways to run it.

Only what our file uses is read: name, entrypoint, description, tags, concurrency_limit, parameters and cron
schedules (with timezone and active). Anything else in a deployment's schedule is refused rather than ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron, Schedule

PREFECT_FILE = Path(__file__).resolve().parents[1] / "deploy" / "prefect.yaml"


class DeploymentFileError(ValueError):
    """prefect.yaml cannot be served as written; the message names the deployment and the field."""


def deployment_specs(path: Path = PREFECT_FILE) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DeploymentFileError(f"{path}: {err}") from err
    specs = document.get("deployments") if isinstance(document, dict) else None
    if not isinstance(specs, list) or not specs:
        raise DeploymentFileError(f"{path}: no deployments listed")
    return specs


def _schedules(name: str, spec: dict[str, Any]) -> list[Schedule]:
    schedules: list[Schedule] = []
    for item in spec.get("schedules") or []:
        unknown = set(item) - {"cron", "timezone", "active"}
        if "cron" not in item or unknown:
            raise DeploymentFileError(f"deployment {name}: only cron schedules (cron, timezone, active) are served")
        schedules.append(Cron(item["cron"], timezone=item.get("timezone"), active=item.get("active", True)))
    return schedules


def runner_deployments(path: Path = PREFECT_FILE, only: tuple[str, ...] = ()) -> list[RunnerDeployment]:
    """The deployments of `path` (or only those named), ready for `prefect.serve`."""
    deployments: list[RunnerDeployment] = []
    specs = deployment_specs(path)
    known = {spec.get("name") for spec in specs}
    if missing := sorted(set(only) - known):
        raise DeploymentFileError(f"no deployment {', '.join(missing)} in {path}; it has {', '.join(sorted(known))}")
    for spec in specs:
        name = spec.get("name")
        if not name or not spec.get("entrypoint"):
            raise DeploymentFileError(f"{path}: every deployment needs a name and an entrypoint")
        if only and name not in only:
            continue
        flow = load_flow_from_entrypoint(spec["entrypoint"])
        deployments.append(
            flow.to_deployment(
                name=name,
                description=spec.get("description"),
                tags=list(spec.get("tags") or []),
                parameters=dict(spec.get("parameters") or {}),
                schedules=_schedules(name, spec),
                concurrency_limit=spec.get("concurrency_limit"),
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return deployments
