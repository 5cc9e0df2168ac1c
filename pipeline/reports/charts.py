"""Charts for the HTML pages (run report, transcript), drawn with matplotlib's Agg canvas and returned as inline
SVG text: no script, no font or image to fetch, so a page works offline and prints as it shows.

matplotlib is imported inside `_figure` only, when a page with charts is rendered: the CLI's start-up never
pays for it. Every element id of a chart is prefixed with the chart's id, so several charts on one page never
share an id (matplotlib numbers its groups per figure, `figure_1`, `axes_1`…); each series carries an id of its
own (`<chart>-<series>[-<category>]`, names made id-safe) and its label as text (fonts are not embedded as
paths), which is what the browser tests look for.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

SENT, FAILED, PENDING = "#17b26a", "#d92d20", "#f79009"
INK, MUTED, ACCENT = "#1d2433", "#667085", "#2e90fa"
WIDTH_IN = 7.2
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# Text stays text (searchable, selectable, small); a `$` in a name is a dollar sign, not TeX; the same data
# gives the same SVG.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "cmesync", "text.parse_math": False, "font.size": 9}
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_IDS = re.compile(r'(\bid="|url\(#|href="#)')


def _safe(part: str) -> str:
    """A name as a piece of an SVG id: runs of anything but [A-Za-z0-9_-] become `_`."""
    return _UNSAFE.sub("_", part).strip("_") or "_"


@contextmanager
def _figure(height_in: float, rows: int = 1) -> Iterator[tuple[Any, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
        axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
        for ax in axes:
            ax.spines[["top", "right"]].set_visible(False)
            ax.tick_params(colors=MUTED, labelsize=8)
        yield figure, axes


def _svg(figure: Any, chart_id: str, title: str) -> str:
    # Called inside `_figure`, so its rc settings hold for the SVG writer too.
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside the HTML page
    svg = _METADATA.sub("", svg)
    prefix = _safe(chart_id)
    svg = _IDS.sub(lambda m: f"{m[1]}{prefix}-", svg)
    label = f'<svg role="img" aria-label="{html.escape(title)}" class="chart" data-chart="{html.escape(chart_id)}"'
    return svg.replace("<svg", label, 1)


def _gid(artist: Any, *parts: str) -> None:
    # `_svg` prefixes every id with the chart's: the series' id is `<chart>-<part>-<part>`.
    artist.set_gid("-".join(_safe(part) for part in parts))


def grouped_bars(
    chart_id: str, title: str, categories: Sequence[str], series: Mapping[str, Sequence[int]], colours: Sequence[str]
) -> str:
    """One group of bars per category (a registry), one bar per series (sent, failed, pending)."""
    with _figure(0.9 + 0.35 * len(categories) * len(series) / 2) as (figure, (ax,)):
        height = 0.8 / len(series)
        for n, ((name, values), colour) in enumerate(zip(series.items(), colours, strict=True)):
            positions = [i - 0.4 + height * (n + 0.5) for i in range(len(categories))]
            bars = ax.barh(positions, values, height=height, label=name, color=colour)
            for category, bar in zip(categories, bars, strict=True):
                _gid(bar, name, category)
            ax.bar_label(bars, fontsize=8, color=INK, padding=2)
        ax.margins(x=0.08)
        ax.set_yticks(range(len(categories)), categories)
        ax.invert_yaxis()
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(title, loc="left", color=INK)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        return _svg(figure, chart_id, title)


def bars(chart_id: str, title: str, labels: Sequence[str], values: Sequence[int], colour: str = FAILED) -> str:
    """One horizontal bar per label (a reason code), largest first as given."""
    with _figure(0.9 + 0.3 * len(labels)) as (figure, (ax,)):
        drawn = ax.barh(range(len(labels)), values, color=colour, height=0.6)
        for label, bar in zip(labels, drawn, strict=True):
            _gid(bar, label)
        ax.bar_label(drawn, fontsize=8, color=INK, padding=2)
        ax.margins(x=0.08)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(title, loc="left", color=INK)
        return _svg(figure, chart_id, title)


def trend(
    chart_id: str,
    title: str,
    runs: Sequence[str],
    series: Mapping[str, Sequence[float]],
    flagged: Sequence[bool],
    flag_label: str,
) -> str:
    """One small line chart per series over the same runs (oldest first), so each keeps its own scale; the
    `flagged` runs (those that did not succeed) are red dots on every line."""
    with _figure(0.6 + 1.1 * len(series), rows=len(series)) as (figure, axes):
        positions = range(len(runs))
        marked = [i for i in positions if flagged[i]]
        for ax, (name, values) in zip(axes, series.items(), strict=True):
            (line,) = ax.plot(positions, values, marker="o", markersize=3, color=ACCENT, label=name)
            _gid(line, name)
            if marked:
                dots = ax.scatter(marked, [values[i] for i in marked], s=22, color=FAILED, zorder=3, label=flag_label)
                _gid(dots, name, "flagged")
            ax.set_ylabel(name, fontsize=8, color=INK, rotation=0, ha="right", va="center")
            ax.set_ylim(bottom=0)
            ax.margins(x=0.02)
        step = max(1, len(runs) // 10)
        axes[-1].set_xticks(list(positions)[::step], list(runs)[::step], rotation=30, ha="right")
        axes[0].set_title(title, loc="left", color=INK)
        if marked:
            axes[0].legend(
                handles=axes[0].collections[:1], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False
            )
        return _svg(figure, chart_id, title)


def cycle_timeline(
    chart_id: str,
    title: str,
    start: date,
    deadline: date,
    as_of: date,
    points: Sequence[tuple[date, float]],
    needed: float,
) -> str:
    """Credits counted over a licence cycle (a step line from 0 at the cycle start to `as_of`) against what is
    needed (a level line), the deadline marked."""
    import matplotlib.dates as mdates

    with _figure(2.6) as (figure, (ax,)):
        end = min(as_of, deadline)
        days = [start, *(day for day, _ in points), max(end, start)]
        totals = [0.0, *(total for _, total in points)]
        totals.append(totals[-1])
        (line,) = ax.step(days, totals, where="post", color=ACCENT, linewidth=2, label="credits counted")
        _gid(line, "counted")
        level = ax.axhline(needed, color=MUTED, linestyle="--", linewidth=1.2, label=f"needed: {needed:g}")
        _gid(level, "needed")
        mark = ax.axvline(deadline, color=FAILED, linewidth=1.2, label=f"deadline {deadline:%d %b %Y}")
        _gid(mark, "deadline")
        ax.set_xlim(start, deadline)
        ax.set_ylim(0, max(needed, totals[-1]) * 1.15 or 1)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.set_title(title, loc="left", color=INK)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        return _svg(figure, chart_id, title)


def requirement_bars(chart_id: str, title: str, requirements: Sequence[tuple[str, str, float, float]]) -> str:
    """Per requirement (id, name, counted, needed) a bar of what is counted, beside a tick at what is needed."""
    with _figure(0.8 + 0.4 * len(requirements)) as (figure, (ax,)):
        for row, (requirement_id, _, counted, needed) in enumerate(requirements):
            colour = SENT if counted >= needed else PENDING
            (bar,) = ax.barh([row], [counted], height=0.55, color=colour)
            _gid(bar, requirement_id, "counted")
            (tick,) = ax.plot([needed, needed], [row - 0.38, row + 0.38], color=INK, linewidth=2)
            _gid(tick, requirement_id, "needed")
            ax.annotate(
                f"{counted:g} of {needed:g}",
                (max(counted, needed), row),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color=INK,
            )
        ax.set_yticks(range(len(requirements)), [name for _, name, _, _ in requirements])
        ax.invert_yaxis()
        ax.set_xlim(0, max(max(c, n) for _, _, c, n in requirements) * 1.25 or 1)
        ax.set_title(title, loc="left", color=INK)
        return _svg(figure, chart_id, title)
