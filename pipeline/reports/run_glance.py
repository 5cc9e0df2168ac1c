"""The run report at a glance: the figures a person scans in ten seconds — deliveries per registry (sent, failed,
pending), dead letters by reason, and the trend of the flow's last runs (records read, credits, dead letters,
duration) from the `runs` table — drawn as charts in the HTML report (pipeline/reports/charts.py) and given as the same
figures in tables in the Markdown of the Prefect artifact.

"sent" and "failed" are the deliveries the run wrote or updated (its time window); "pending" is the registry's
queue now. A run's "dead letters" are what it rejected at normalise and reconcile plus its failed deliveries,
as counted in its `runs` row (a stream run's records read are the messages it consumed). Only names, reason
codes and counts: no PII.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.queries import RunRow, Window, dead_letters_seen, deliveries_touched, delivery_backlog, runs_up_to
from ledger.store import Ledger
from pipeline.outcome import RUNNING, SUCCEEDED
from reconcile.vocabulary import DeliveryState

TREND_RUNS = 30
DELIVERY_SERIES = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.PENDING)
TREND_SERIES = ("records read", "credits", "dead letters", "duration (s)")
# The run counts a run's dead letters are the sum of: the nightly's (pipeline/reports/summary.py) and the stream's
# (pipeline/stages/stream.py, which reads from Kafka: `consumed` for records read, `rejected` at reconcile).
DEAD_LETTER_COUNTS = ("rejected_at_normalise", "rejected_at_reconcile", "rejected", "delivery_failed")

DELIVERIES_CHART, DEAD_LETTERS_CHART, TREND_CHART = "deliveries", "dead-letters", "trend"


def records_read(counts: dict[str, int]) -> int:
    return counts.get("records_read", counts.get("consumed", 0))


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    started_at: datetime
    status: str
    records_read: int
    credits: int
    dead_letters: int
    duration_s: float | None

    @classmethod
    def of(cls, run: RunRow) -> TrendPoint:
        counts = run.counts
        return cls(
            run.run_id,
            run.started_at,
            run.status,
            records_read(counts),
            counts.get("credit_versions", 0),
            sum(counts.get(key, 0) for key in DEAD_LETTER_COUNTS),
            run.duration_s,
        )

    @property
    def values(self) -> tuple[float, ...]:
        """In the order of TREND_SERIES; a run still going counts 0 s."""
        return (self.records_read, self.credits, self.dead_letters, round(self.duration_s or 0.0, 1))


@dataclass(frozen=True)
class Glance:
    deliveries: dict[str, tuple[int, int, int]]  # registry → (sent, failed, pending), in DELIVERY_SERIES order
    dead_letters: list[tuple[str, int]]  # (reason code, count), largest first
    trend: list[TrendPoint]  # the flow's last runs up to this one, oldest first


def glance_of(ledger: Ledger, run: RunRow, window: Window) -> Glance:
    touched, backlog = deliveries_touched(ledger, window), delivery_backlog(ledger)
    deliveries = {
        registry: (
            touched.get(registry, {}).get(DeliveryState.SENT, 0),
            touched.get(registry, {}).get(DeliveryState.FAILED, 0),
            backlog.get(registry, {}).get(DeliveryState.PENDING, 0),
        )
        for registry in sorted(set(touched) | set(backlog))
    }
    reasons: dict[str, int] = {}
    for _, _, reason_code, count in dead_letters_seen(ledger, window):
        reasons[reason_code] = reasons.get(reason_code, 0) + count
    by_count = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    trend = [TrendPoint.of(r) for r in runs_up_to(ledger, run.flow, run.started_at, TREND_RUNS)]
    return Glance(deliveries, by_count, trend)


def trend_title(glance: Glance) -> str:
    n = len(glance.trend)
    return "This run alone: no earlier run" if n == 1 else f"The last {n} runs"


def _run_label(point: TrendPoint) -> str:
    return f"{point.started_at:%m-%d %H:%M}"


# -- Markdown (the Prefect artifact) ---------------------------------------------------------------------------


def _md_table(headers: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    return lines + ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]


def glance_markdown(glance: Glance) -> list[str]:
    lines = ["## At a glance", "", "### Deliveries per registry", ""]
    rows = [(registry, *counts) for registry, counts in glance.deliveries.items()]
    lines += _md_table(("registry", *DELIVERY_SERIES), rows) if rows else ["_no registry deliveries_"]
    lines += ["", "### Dead letters by reason", ""]
    lines += _md_table(("reason code", "count"), glance.dead_letters) if glance.dead_letters else ["_none_"]
    lines += ["", f"### {trend_title(glance)}", ""]
    trend = [(f"`{p.run_id[:8]}`", _run_label(p), p.status, *p.values) for p in glance.trend]
    lines += _md_table(("run", "started (UTC)", "outcome", *TREND_SERIES), trend)
    return lines


# -- HTML: the charts ------------------------------------------------------------------------------------------


def glance_html(glance: Glance) -> list[str]:
    from pipeline.reports import charts
    parts = ['<section class="glance">', "<h2>At a glance</h2>"]
    if glance.deliveries:
        registries = list(glance.deliveries)
        series = {name: [glance.deliveries[r][i] for r in registries] for i, name in enumerate(DELIVERY_SERIES)}
        colours = (charts.SENT, charts.FAILED, charts.PENDING)
        parts.append(charts.grouped_bars(DELIVERIES_CHART, "Deliveries per registry", registries, series, colours))
    else:
        parts.append('<p class="empty">No registry deliveries.</p>')
    if glance.dead_letters:
        codes, counts = [code for code, _ in glance.dead_letters], [n for _, n in glance.dead_letters]
        parts.append(charts.bars(DEAD_LETTERS_CHART, "Dead letters by reason", codes, counts))
    else:
        parts.append('<p class="empty">No dead letters in this run.</p>')
    labels = [_run_label(p) for p in glance.trend]
    values = {name: [p.values[i] for p in glance.trend] for i, name in enumerate(TREND_SERIES)}
    flagged = [p.status not in (SUCCEEDED, RUNNING) for p in glance.trend]
    title = f"{trend_title(glance)} (by start, UTC)"
    parts.append(charts.trend(TREND_CHART, title, labels, values, flagged, "partial or failed"))
    parts.append("</section>")
    return parts
