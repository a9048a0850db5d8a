"""Charts as inline SVG, drawn on the server: no JavaScript, printable, allowed by the CSP.

Each chart is an `<svg role="img">` with a title and a description; the pages show the same
figures in a table next to it, so nothing is only in a picture (WCAG 1.1.1).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float | None]]  # (x, y); y None: a gap


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** (len(str(int(value))) - 1)
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return float(step * magnitude)
    return 10.0 * magnitude


def _frame(title: str, description: str, width: int, height: int) -> tuple[str, list[str]]:
    n = next(_ids)
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="chart-{n}-t chart-{n}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-{n}-t">{escape(title)}</title>'
        f'<desc id="chart-{n}-d">{escape(description)}</desc>'
    )
    return head, []


def line_chart(
    title: str,
    description: str,
    series: Sequence[Series],
    *,
    x_labels: Sequence[tuple[float, str]] = (),
    y_max: float | None = None,
    y_unit: str = "",
    bands: Sequence[tuple[float, float]] = (),
    band_label: str = "",
    width: int = 720,
    height: int = 240,
) -> Markup:
    """Lines over a numeric x axis (e.g. epoch seconds); `bands` shade x ranges (e.g. online)."""
    left, right, top, bottom = 48, 12, 12, 36
    xs = [x for s in series for x, y in s.points if y is not None] + [b for r in bands for b in r]
    ys = [y for s in series for _, y in s.points if y is not None]
    head, parts = _frame(title, description, width, height)
    if not xs:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">–</text>')
        return Markup(head + "".join(parts) + "</svg>")
    x0, x1 = min(xs), max(xs)
    span = (x1 - x0) or 1.0
    top_y = y_max if y_max is not None else _nice_max(max(ys, default=1.0))
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / span * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y / top_y) * plot_h

    for start, end in bands:
        parts.append(
            f'<rect class="band series-1" x="{px(start):.1f}" y="{top}" '
            f'width="{max(1.0, px(end) - px(start)):.1f}" height="{plot_h}"/>'
        )
    for i in range(5):
        value = top_y * i / 4
        y = py(value)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_short(value))}{escape(y_unit)}</text>"
        )
    for x, label in x_labels:
        parts.append(
            f'<text x="{px(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}"/>'
    )
    for index, s in enumerate(series):
        for run in _runs(s.points):
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            parts.append(f'<polyline class="line series-{index % 4}" points="{path}"/>')
    legend = [(s.label, f"series-{i % 4}") for i, s in enumerate(series)]
    if bands and band_label:
        legend.append((band_label, "series-1 band"))
    parts.append(_legend(legend, left, height - 6))
    return Markup(head + "".join(parts) + "</svg>")


def bar_chart(
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    y_unit: str = "",
    y_max: float | None = None,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """Grouped vertical bars: one group per category, one bar per series (None: suppressed)."""
    left, right, top, bottom = 48, 12, 12, 52
    head, parts = _frame(title, description, width, height)
    values = [v for _, vs in series for v in vs if v is not None]
    top_y = y_max if y_max is not None else _nice_max(max(values, default=1.0))
    plot_w, plot_h = width - left - right, height - top - bottom
    group_w = plot_w / max(1, len(categories))
    bar_w = group_w * 0.8 / max(1, len(series))
    for i in range(5):
        value = top_y * i / 4
        y = top + plot_h - value / top_y * plot_h
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_short(value))}{escape(y_unit)}</text>"
        )
    for c, category in enumerate(categories):
        gx = left + c * group_w + group_w * 0.1
        for s, (label, vs) in enumerate(series):
            bar = vs[c] if c < len(vs) else None
            if bar is None:
                continue
            value = bar
            h = max(0.0, min(value, top_y)) / top_y * plot_h
            parts.append(
                f'<rect class="series-{s % 4}" x="{gx + s * bar_w:.1f}" '
                f'y="{top + plot_h - h:.1f}" width="{bar_w * 0.92:.1f}" height="{h:.1f}">'
                f"<title>{escape(category)}, {escape(label)}: {escape(_short(value))}"
                f"{escape(y_unit)}</title></rect>"
            )
        parts.append(
            f'<text x="{left + (c + 0.5) * group_w:.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="middle">{escape(_truncate(category, group_w))}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}"/>'
    )
    if len(series) > 1:
        parts.append(
            _legend(
                [(label, f"series-{i % 4}") for i, (label, _) in enumerate(series)],
                left,
                height - 8,
            )
        )
    return Markup(head + "".join(parts) + "</svg>")


def time_labels(
    start: datetime, end: datetime, fmt: str, count: int = 6
) -> list[tuple[float, str]]:
    """Evenly spaced x labels between two instants (x in epoch seconds)."""
    a, b = start.timestamp(), end.timestamp()
    if b <= a:
        return [(a, start.strftime(fmt))]
    return [
        (
            a + (b - a) * i / (count - 1),
            datetime.fromtimestamp(a + (b - a) * i / (count - 1), start.tzinfo).strftime(fmt),
        )
        for i in range(count)
    ]


def _runs(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for label, css in items:
        parts.append(f'<rect class="{css}" x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12"/>')
        parts.append(f'<text x="{x + 16:.1f}" y="{y:.1f}">{escape(label)}</text>')
        x += 28 + 7 * len(label)
    return "".join(parts)


def _short(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.1f}"


def _truncate(text: str, room: float) -> str:
    fits = max(3, int(room / 7))
    return text if len(text) <= fits else text[: fits - 1] + "…"
