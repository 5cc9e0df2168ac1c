"""The one mapping from what a run did to how it ends, used by the flow, the runs table, the report, the CLI's
exit code and `cmesync status` (README "Outcomes and exit codes").

| outcome     | when                                                                 | exit | Prefect   | report |
|-------------|----------------------------------------------------------------------|------|-----------|--------|
| `succeeded` | every stage ran; no failed delivery, every registry diff read        | 0    | Completed | green  |
| `partial`   | every stage ran, but a delivery failed or a registry diff was unavailable | 1 | Failed  | amber  |
| `failed`    | a stage raised: the run stopped part-way                             | 1    | Failed    | red    |

Records rejected at normalise or reconcile are dead letters of bad input, not a failure of the run: the run
delivered everything it could. A failed delivery or an unreadable registry is: someone has to replay.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SUCCEEDED = "succeeded"
PARTIAL = "partial"
FAILED = "failed"
RUNNING = "running"


@dataclass(frozen=True)
class RunOutcome:
    """How one run ends. `delivery_failed`: registry → deliveries that failed in this run; `diff_unavailable`:
    registries whose holdings the nightly diff could not read; `error`: what stopped the run, if anything;
    `notices_failed`: HR registry → at-risk notices not received (the next run sends them)."""

    delivery_failed: Mapping[str, int] = field(default_factory=dict)
    diff_unavailable: tuple[str, ...] = ()
    error: str | None = None
    config_path: str | None = None
    notices_failed: Mapping[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.error is not None:
            return FAILED
        return PARTIAL if self.failing_registries else SUCCEEDED

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def failing_registries(self) -> list[str]:
        failed = {name for name, n in self.delivery_failed.items() if n}
        failed |= {name for name, n in self.notices_failed.items() if n}
        return sorted(failed | set(self.diff_unavailable))

    def replay_command(self, registry: str) -> str:
        config = f" --config {shlex.quote(self.config_path)}" if self.config_path else ""
        return f"cmesync replay --registry {shlex.quote(registry)}{config}"

    @property
    def replay_commands(self) -> list[str]:
        """The exact commands that re-deliver what failed, one per registry with failed deliveries."""
        return [self.replay_command(name) for name, n in sorted(self.delivery_failed.items()) if n]

    @property
    def problems(self) -> list[str]:
        """What went wrong, one phrase each, registry by registry."""
        lines = [f"run stopped: {self.error}"] if self.error is not None else []
        lines += [f"{name}: {n} deliveries failed" for name, n in sorted(self.delivery_failed.items()) if n]
        lines += [f"{name}: registry diff unavailable (holdings not read)" for name in sorted(self.diff_unavailable)]
        lines += [
            f"{name}: {n} at-risk notices not received (the next run sends them)"
            for name, n in sorted(self.notices_failed.items())
            if n
        ]
        return lines

    @property
    def message(self) -> str:
        """One line for the Prefect state, the log and stderr."""
        if self.ok:
            return "run succeeded"
        text = f"run {self.status}: " + "; ".join(self.problems)
        if self.replay_commands:
            text += "; then run " + " and ".join(f"`{c}`" for c in self.replay_commands)
        return text


def outcome_of(
    delivery_failed: Mapping[str, int],
    diff_counts: Mapping[str, Mapping[str, int]],
    error: str | None = None,
    config_path: str | None = None,
    notices_failed: Mapping[str, int] | None = None,
) -> RunOutcome:
    """The outcome from per-registry failed deliveries and the diff counts (`unavailable` = 1 when unread)."""
    unavailable = tuple(sorted(name for name, counts in diff_counts.items() if counts.get("unavailable")))
    return RunOutcome(dict(delivery_failed), unavailable, error, config_path, dict(notices_failed or {}))


def status_exit_code(last_run_status: str | None, last_run_delivery_failed: int, failed_backlog: Iterable[int]) -> int:
    """`cmesync status`: 1 while something still needs a person — deliveries awaiting a replay, a last run that
    stopped part-way, or one that was partial for another reason than failed deliveries (an unreadable
    registry: its diff waits for the next night); a partial run whose failed deliveries were all replayed is
    dealt with. Else 0."""
    if any(n for n in failed_backlog) or last_run_status == FAILED:
        return 1
    return 1 if last_run_status == PARTIAL and not last_run_delivery_failed else 0
