"""The sample Grafana dashboard (deploy/grafana/) is valid JSON, every panel says what it shows, and it queries
only series the metrics module defines, and every family it defines somewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pipeline import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "cmesync-dashboard.json"
SERIES = re.compile(r"\bcmesync_[a-z0-9_]+")


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"] if p["type"] != "row"]


def queried(panel: dict[str, Any]) -> set[str]:
    return {name for target in panel["targets"] for name in SERIES.findall(target["expr"])}


def test_given_the_dashboard_when_read_then_every_panel_is_documented_and_queries_something() -> None:
    assert panels()
    for panel in panels():
        assert panel["title"] and panel["description"], panel["id"]
        assert queried(panel), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"  # the Prometheus picked on import, not a fixed one


def test_given_the_dashboard_when_its_queries_are_read_then_every_series_exists_and_every_family_is_shown() -> None:
    names = set().union(*(queried(panel) for panel in panels()))
    assert names <= metrics.sample_names(), sorted(names - metrics.sample_names())
    families = {described.name for family in metrics.FAMILIES for described in family.describe()}
    shown = {family for family in families if any(name.startswith(family) for name in names)}
    assert shown == families
