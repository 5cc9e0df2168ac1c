"""The configuration files shipped for people: the documented example must configure exactly what the embedded
demo does, and the production-like stack's config must load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.config import SAMPLE_DIR, Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def files_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the files say, not what this shell's CMESYNC_* variables override."""
    for name in [n for n in os.environ if n.startswith("CMESYNC_")]:
        monkeypatch.delenv(name)


def test_given_the_documented_example_when_loaded_then_it_configures_exactly_what_the_demo_does() -> None:
    example = Settings.load(REPO / "cmesync.example.toml")
    demo = Settings.load(SAMPLE_DIR / "cmesync.toml")

    assert example.model_dump() == demo.model_dump()


def test_given_the_compose_stack_config_when_loaded_then_every_endpoint_is_set() -> None:
    settings = Settings.load(REPO / "deploy" / "compose" / "cmesync.toml")

    assert settings.missing_endpoints() == []
    assert settings.ledger_url.startswith("postgresql+psycopg://")
