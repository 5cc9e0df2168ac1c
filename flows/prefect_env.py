"""Defaults for Prefect's process-wide settings, set before Prefect is first used by a command or the bench."""

from __future__ import annotations

import os


def quiet_prefect() -> None:
    """No analytics; and a temporary server (no PREFECT_API_URL) is allowed 90 s to start instead of Prefect's
    20 s, which a busy machine exceeds. Values the operator set win."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
