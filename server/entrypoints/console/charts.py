"""Charts as inline SVG, drawn on the server: no JavaScript, printable, allowed by the CSP.

Each chart is an `<svg role="group">` named by its title and described by its description,
with the title also drawn as visible text. Every point and bar is a focusable `role="img"`
with an accessible name and an SVG `<title>`, so its value shows on hover and is announced
on focus. The pages show the same figures in a table next to the chart, so nothing is only
in a picture (WCAG 1.1.1). No inline style: classes only (the stylesheet is console.css).

Values: a number, `None` (no figure: a gap in a line, nothing in a bar) or `Withheld` (a
figure suppressed for privacy: drawn as a hatched, outlined mark labelled with its text,
never as zero).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from markupsafe import Markup, escape

from server.entrypoints.console.i18n import fmt_number
from server.entrypoints.console.i18n import gettext as _

_ids = itertools.count(1)

CHAR_W = 7.0  # a generous average width of a 12px character, for fitting labels
TITLE_CHAR_W = 9.0  # the same for the bold 14px title
TITLE_H = 28.0  # the visible title's band at the top
LEGEND_ROW = 18.0
LEGEND_Y = 38.0  # the legend's first row, below the plot (its x labels in between)
LEFT = 48.0  # room for the y axis' labels
MAX_TARGETS = 48  # hover/focus targets per line series; denser series are sampled
MARKED = 60  # a series of at most this many points marks every point


@dataclass(frozen=True)
class Withheld:
    """A figure withheld for privacy (small-count suppression)."""

    text: str  # as the tables show it, e.g. "< 5"
    upper: float | None = None  # the most it can be, if known (else a mark of fixed height)


Value = float | Withheld | None


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, Value]]  # (x, y); y None: a gap


@dataclass
class _Box:
    """The plot area in pixels and the data ranges it shows."""

    left: float
    right: float
    top: float
    bottom: float
    x0: float = 0.0
    x1: float = 1.0
    y_top: float = 1.0

    def px(self, x: float) -> float:
        span = self.x1 - self.x0
        if span <= 0:
            return (self.left + self.right) / 2
        return self.left + (x - self.x0) / span * (self.right - self.left)

    def py(self, y: float) -> float:
        y = max(0.0, min(y, self.y_top))
        return self.bottom - y / self.y_top * (self.bottom - self.top)


@dataclass
class _Chart:
    """An SVG being assembled: the frame is written last, once the height is known."""

    title: str
    description: str
    width: int
    height: float
    n: int = field(default_factory=lambda: next(_ids))
    parts: list[str] = field(default_factory=list)
    withheld: str | None = None  # the text of withheld figures, once one is drawn

    @property
    def hatch(self) -> str:
        return f"chart-{self.n}-hatch"

    def svg(self) -> Markup:
        n, width, height = self.n, self.width, self.height
        description = self.description
        if self.withheld:
            description += " " + _(
                "Hatched marks are withheld figures (%(text)s): too few cases to show.",
                text=self.withheld,
            )
        head = (
            f'<svg class="chart" viewBox="0 0 {width} {height:.0f}" width="{width}" '
            f'height="{height:.0f}" role="group" aria-labelledby="chart-{n}-t" '
            f'aria-describedby="chart-{n}-d" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="chart-{n}-t">{escape(self.title)}</title>'
            f'<desc id="chart-{n}-d">{escape(description)}</desc>'
            f'<defs><pattern id="{self.hatch}" patternUnits="userSpaceOnUse" width="6" '
            'height="6" patternTransform="rotate(45)">'
            '<line class="hatch" x1="1" y1="0" x2="1" y2="6"/></pattern></defs>'
            f'<text class="chart-title" x="8" y="{TITLE_H - 10:.0f}" aria-hidden="true">'
            f"{escape(_fit(self.title, width - 16, TITLE_CHAR_W))}</text>"
        )
        return Markup(head + "".join(self.parts) + "</svg>")

    def no_data(self, box: _Box, text: str) -> Markup:
        self.parts.append(
            f'<rect class="empty" x="{box.left:.1f}" y="{box.top:.1f}" '
            f'width="{box.right - box.left:.1f}" height="{box.bottom - box.top:.1f}"/>'
            f'<text class="no-data" x="{(box.left + box.right) / 2:.1f}" '
            f'y="{(box.top + box.bottom) / 2 + 4:.1f}" text-anchor="middle">'
            f"{escape(_fit(text, box.right - box.left - 8, TITLE_CHAR_W))}</text>"
        )
        return self.svg()

    def withheld_mark(
        self, box: _Box, x: float, w: float, value: Withheld, name: str, hit: str, room: float
    ) -> None:
        """A hatched, outlined box from the baseline up to the most the figure can be,
        labelled with its text where `room` (the width free around it) allows."""
        self.withheld = value.text
        top = box.py(value.upper) if value.upper is not None else box.bottom - 24
        top = min(top, box.bottom - 10)
        label = ""
        if room >= len(value.text) * CHAR_W:
            half = len(value.text) * CHAR_W / 2
            centre = min(max(x + w / 2, half + 2), self.width - half - 2)
            label = (
                f'<text class="withheld-label" x="{centre:.1f}" y="{top - 4:.1f}" '
                f'text-anchor="middle" aria-hidden="true">{escape(value.text)}</text>'
            )
        self.parts.append(
            f'<g class="point" tabindex="0" role="img" aria-label="{escape(name)}">'
            f"<title>{escape(name)}</title>{hit}"
            f'<rect class="withheld" fill="url(#{self.hatch})" x="{x:.1f}" y="{top:.1f}" '
            f'width="{w:.1f}" height="{box.bottom - top:.1f}"/>{label}</g>'
        )

    def y_axis(self, box: _Box, ticks: Sequence[float], unit: str) -> None:
        parts = ['<g class="y-axis" aria-hidden="true">']
        for value in ticks:
            y = box.py(value)
            parts.append(
                f'<line class="grid" x1="{box.left:.1f}" x2="{box.right:.1f}" '
                f'y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text class="tick" x="{box.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(_number(value))}{escape(unit)}</text>"
            )
        parts.append(
            f'<line class="axis" x1="{box.left:.1f}" x2="{box.right:.1f}" '
            f'y1="{box.bottom:.1f}" y2="{box.bottom:.1f}"/></g>'
        )
        self.parts.append("".join(parts))

    def legend(self, items: Sequence[tuple[str, str]], x: float, y: float) -> None:
        """One swatch and label per item, wrapped onto rows within the width."""
        parts = ['<g class="legend">']
        start = x
        for label, css in items:
            text = _fit(label, self.width - 2 * start - 16)
            room = 28 + CHAR_W * len(text)
            if x > start and x + room > self.width - 4:
                x, y = start, y + LEGEND_ROW
            fill = f' fill="url(#{self.hatch})"' if "withheld" in css else ""
            parts.append(
                f'<rect class="swatch {css}"{fill} x="{x:.1f}" y="{y - 10:.1f}" '
                'width="12" height="12"/>'
                f'<text x="{x + 16:.1f}" y="{y:.1f}">{escape(text)}</text>'
            )
            x += room
        parts.append("</g>")
        self.parts.append("".join(parts))
        self.height = max(self.height, y + 8)


def legend_rows(items: Sequence[str], width: float, left: float) -> int:
    """How many rows `_Chart.legend` needs for these labels."""
    rows, x = 1, left
    for label in items:
        room = 28 + CHAR_W * len(_fit(label, width - 2 * left - 16))
        if x > left and x + room > width - 4:
            rows, x = rows + 1, left
        x += room
    return rows


def nice_ticks(high: float, counts: bool = False) -> list[float]:
    """0 … a round maximum at or above `high` in at most five steps of 1, 2, 2.5 or 5 × 10ⁿ;
    whole steps only for counts (no 0.2 of a loan)."""
    # All zero (or withheld): 0 … 1. Smaller than a millionth is nothing these charts show.
    high = max(high, 1.0) if high <= 0 or counts else max(high, 1e-6)
    exponent = math.floor(math.log10(high / 5))
    steps = sorted(m * 10.0**e for e in (exponent, exponent + 1) for m in (1.0, 2.0, 2.5, 5.0))
    if counts:
        steps = [s for s in steps if s >= 1 and s.is_integer()]
    step = next(s for s in steps if math.ceil(high / s - 1e-9) <= 5)
    return [round(i * step, 10) for i in range(math.ceil(high / step - 1e-9) + 1)]


def line_chart(
    title: str,
    description: str,
    series: Sequence[Series],
    *,
    x_range: tuple[float, float] | None = None,
    x_labels: Sequence[tuple[float, str]] = (),
    x_text: Callable[[float], str] | None = None,
    y_max: float | None = None,
    y_unit: str = "",
    counts: bool = False,
    bands: Sequence[tuple[float, float]] = (),
    band_label: str = "",
    empty_text: str = "",
    width: int = 720,
    height: int = 240,
) -> Markup:
    """Lines over a numeric x axis (e.g. epoch seconds) spanning `x_range` (else the data's
    span); `bands` shade x ranges (e.g. online). Isolated points and sparse series are
    marked; withheld values are hatched marks that break the line."""
    if x_range is not None:
        lo, hi = x_range
        series = [Series(s.label, [(x, y) for x, y in s.points if lo <= x <= hi]) for s in series]
        bands = [(max(a, lo), min(b, hi)) for a, b in bands if b >= lo and a <= hi]
    legend = [(s.label, f"series-{i % 4}") for i, s in enumerate(series)]
    if bands and band_label:
        legend.append((band_label, "series-1 band"))
    withheld = next((y for s in series for _x, y in s.points if isinstance(y, Withheld)), None)
    if withheld is not None:
        legend.append((_("Withheld (%(text)s)", text=withheld.text), "withheld"))
    rows = legend_rows([label for label, _css in legend], width, LEFT)
    chart = _Chart(title, description, width, height + max(0, rows - 1) * LEGEND_ROW)
    box = _plot_box(chart, rows)
    xs = [x for s in series for x, y in s.points if y is not None] + [b for r in bands for b in r]
    if not xs:
        return chart.no_data(box, empty_text or _("No data in this period"))
    box.x0, box.x1 = x_range if x_range is not None else (min(xs), max(xs))
    ticks = nice_ticks(y_max if y_max is not None else _highest(series), counts)
    box.y_top, box.left = ticks[-1], _left(ticks, y_unit)
    for start, end in bands:
        chart.parts.append(
            f'<rect class="band series-1" x="{box.px(start):.1f}" y="{box.top:.1f}" '
            f'width="{max(1.0, box.px(end) - box.px(start)):.1f}" '
            f'height="{box.bottom - box.top:.1f}"/>'
        )
    chart.y_axis(box, ticks, y_unit)
    _x_axis(chart, box, x_labels)
    labels = dict(x_labels)
    text = x_text or (lambda x: labels.get(x, _number(x)))
    for index, s in enumerate(series):
        _line(chart, box, s, f"series-{index % 4}", text, y_unit)
    chart.legend(legend, LEFT, box.bottom + LEGEND_Y)
    return chart.svg()


def _plot_box(chart: _Chart, legend_rows: int) -> _Box:
    """The plot area: the title above; the x labels and the legend's rows below."""
    below = 26 if not legend_rows else LEGEND_Y + 8 + (legend_rows - 1) * LEGEND_ROW
    return _Box(LEFT, chart.width - 16, TITLE_H + 14, chart.height - below)


def _left(ticks: Sequence[float], unit: str) -> float:
    """The plot's left edge: room for the longest y label."""
    longest = max(len(_number(t) + unit) for t in ticks)
    return max(LEFT, 12 + CHAR_W * longest)


def _highest(series: Sequence[Series]) -> float:
    values = [
        y if isinstance(y, float | int) else (y.upper or 0.0)
        for s in series
        for _x, y in s.points
        if y is not None
    ]
    return max(values, default=1.0)


def _x_axis(chart: _Chart, box: _Box, labels: Sequence[tuple[float, str]]) -> None:
    """A tick and a label at each x inside the range; labels kept inside the canvas."""
    parts = ['<g class="x-axis" aria-hidden="true">']
    for x, label in labels:
        if not box.x0 <= x <= box.x1:
            continue
        at = box.px(x)
        half = len(label) * CHAR_W / 2
        centre = min(max(at, half + 2), chart.width - half - 2)
        parts.append(
            f'<line class="tick" x1="{at:.1f}" x2="{at:.1f}" y1="{box.bottom:.1f}" '
            f'y2="{box.bottom + 4:.1f}"/>'
            f'<text class="tick" x="{centre:.1f}" y="{box.bottom + 17:.1f}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</g>")
    chart.parts.append("".join(parts))


def _line(
    chart: _Chart,
    box: _Box,
    s: Series,
    css: str,
    x_text: Callable[[float], str],
    unit: str,
) -> None:
    """The runs of a series as polylines, then its hover/focus targets and marks."""
    for run in _runs(s.points):
        if len(run) > 1:
            path = " ".join(f"{box.px(x):.1f},{box.py(y):.1f}" for x, y in run)
            chart.parts.append(f'<polyline class="line {css}" points="{path}"/>')
    present = [(i, x, y) for i, (x, y) in enumerate(s.points) if y is not None]
    isolated = _isolated(s.points)
    every = max(1, math.ceil(len(present) / MAX_TARGETS))
    for k, (i, x, y) in enumerate(present):
        if isinstance(y, Withheld):
            name = f"{x_text(x)}, {s.label}: {_('withheld (%(text)s)', text=y.text)}"
            hit = f'<circle class="hit" cx="{box.px(x):.1f}" cy="{box.bottom - 8:.1f}" r="8"/>'
            room = (box.right - box.left) / max(1, len(s.points) - 1)
            chart.withheld_mark(box, box.px(x) - 5, 10, y, name, hit, room)
            continue
        marked = len(present) <= MARKED or i in isolated
        if not marked and k % every and k != len(present) - 1:
            continue
        name = f"{x_text(x)}, {s.label}: {_number(y)}{unit}"
        cx, cy = box.px(x), box.py(y)
        mark = "marker" if marked else "marker hidden"
        chart.parts.append(
            f'<g class="point" tabindex="0" role="img" aria-label="{escape(name)}">'
            f"<title>{escape(name)}</title>"
            f'<circle class="hit" cx="{cx:.1f}" cy="{cy:.1f}" r="7"/>'
            f'<circle class="{mark} {css}" cx="{cx:.1f}" cy="{cy:.1f}" r="3.5"/></g>'
        )


def _isolated(points: Sequence[tuple[float, Value]]) -> set[int]:
    """Indexes of numeric points with no numeric neighbour (a line would not show them)."""

    def numeric(i: int) -> bool:
        return 0 <= i < len(points) and isinstance(points[i][1], float | int)

    return {
        i for i in range(len(points)) if numeric(i) and not numeric(i - 1) and not numeric(i + 1)
    }


def bar_chart(
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[Value]]],
    *,
    y_unit: str = "",
    y_max: float | None = None,
    counts: bool = False,
    empty_text: str = "",
    width: int = 720,
    height: int = 260,
) -> Markup:
    """Grouped vertical bars: one group per category, one bar per series. None: no figure
    (a dash); `Withheld`: a hatched, outlined bar up to the most it can be."""
    legend = [(label, f"series-{i % 4}") for i, (label, _vs) in enumerate(series)]
    if len(series) < 2:
        legend = []
    withheld = next((v for _l, vs in series for v in vs if isinstance(v, Withheld)), None)
    if withheld is not None:
        legend.append((_("Withheld (%(text)s)", text=withheld.text), "withheld"))
    rows = legend_rows([label for label, _css in legend], width, LEFT) if legend else 0
    chart = _Chart(title, description, width, height + max(0, rows - 1) * LEGEND_ROW)
    box = _plot_box(chart, rows)
    if not any(v is not None for _l, vs in series for v in vs[: len(categories)]):
        return chart.no_data(box, empty_text or _("No data in this period"))
    as_series = [Series(label, list(enumerate(vs))) for label, vs in series]
    ticks = nice_ticks(y_max if y_max is not None else _highest(as_series), counts)
    box.y_top, box.left = ticks[-1], _left(ticks, y_unit)
    chart.y_axis(box, ticks, y_unit)
    group_w = (box.right - box.left) / len(categories)
    bar_w = group_w * 0.8 / max(1, len(series))
    for c, category in enumerate(categories):
        gx = box.left + c * group_w + group_w * 0.1
        for s, (label, vs) in enumerate(series):
            value = vs[c] if c < len(vs) else None
            name = f"{category}, {label}: " + _value_text(value, y_unit)
            _bar(chart, box, gx + s * bar_w, bar_w * 0.92, value, name, f"series-{s % 4}")
    _category_labels(chart, box, categories, group_w)
    if legend:
        chart.legend(legend, LEFT, box.bottom + LEGEND_Y)
    return chart.svg()


def _value_text(value: Value, unit: str) -> str:
    if value is None:
        return _("no figure")
    if isinstance(value, Withheld):
        return _("withheld (%(text)s)", text=value.text)
    return f"{_number(value)}{unit}"


def _bar(chart: _Chart, box: _Box, x: float, w: float, value: Value, name: str, css: str) -> None:
    """One bar with its hover/focus target (the whole column, so a zero is reachable too)."""
    hit = (
        f'<rect class="hit" x="{x:.1f}" y="{box.top:.1f}" width="{w:.1f}" '
        f'height="{box.bottom - box.top:.1f}"/>'
    )
    if isinstance(value, Withheld):
        chart.withheld_mark(box, x, w, value, name, hit, w / 0.92)
        return
    if value is None:
        mark = (
            f'<text class="no-figure" x="{x + w / 2:.1f}" y="{box.bottom - 4:.1f}" '
            'text-anchor="middle" aria-hidden="true">–</text>'
        )
    elif value <= 0:  # a zero: a short stroke on the baseline, so it is not mistaken for none
        mark = (
            f'<line class="zero {css}" x1="{x:.1f}" x2="{x + w:.1f}" y1="{box.bottom - 1:.1f}" '
            f'y2="{box.bottom - 1:.1f}"/>'
        )
    else:
        top = box.py(value)
        mark = (
            f'<rect class="bar {css}" x="{x:.1f}" y="{top:.1f}" width="{w:.1f}" '
            f'height="{box.bottom - top:.1f}"/>'
        )
    chart.parts.append(
        f'<g class="point" tabindex="0" role="img" aria-label="{escape(name)}">'
        f"<title>{escape(name)}</title>{hit}{mark}</g>"
    )


def _category_labels(chart: _Chart, box: _Box, categories: Sequence[str], group_w: float) -> None:
    """Labels under the groups: every k-th when they would not fit side by side."""
    longest = max((len(c) for c in categories), default=1)
    every = max(1, math.ceil(min(longest, 14) * CHAR_W / max(group_w, 1.0)))
    parts = ['<g class="x-axis" aria-hidden="true">']
    for c, category in enumerate(categories):
        if c % every:
            continue
        room = min(group_w * every, chart.width - 8)
        text = _fit(category, room)
        half = len(text) * CHAR_W / 2
        centre = min(max(box.left + (c + 0.5) * group_w, half + 2), chart.width - half - 2)
        parts.append(
            f'<text class="tick" x="{centre:.1f}" y="{box.bottom + 16:.1f}" '
            f'text-anchor="middle">{escape(text)}</text>'
        )
    parts.append("</g>")
    chart.parts.append("".join(parts))


def time_labels(
    start: datetime,
    end: datetime,
    text: Callable[[datetime], str],
    count: int = 6,
    tz: tzinfo | None = None,
) -> list[tuple[float, str]]:
    """Evenly spaced x labels from `start` to `end`, both included (x in epoch seconds),
    written by `text` (the user's locale) for the time in `tz` (else start's time zone)."""
    a, b = start.timestamp(), end.timestamp()
    zone = tz or start.tzinfo
    if b <= a or count < 2:
        return [(a, text(datetime.fromtimestamp(a, zone)))]
    stamps = [a + (b - a) * i / (count - 1) for i in range(count)]
    return [(t, text(datetime.fromtimestamp(t, zone))) for t in stamps]


def _runs(points: Sequence[tuple[float, Value]]) -> list[list[tuple[float, float]]]:
    """Stretches of numeric values; None and withheld values break the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None or isinstance(y, Withheld):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, float(y)))
    return [r for r in runs if r]


def _number(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return fmt_number(int(round(value)), 0)
    return fmt_number(value, 2 if abs(value) < 10 else 1)


def _fit(text: str, room: float, char_w: float = CHAR_W) -> str:
    fits = max(3, int(room / char_w))
    return text if len(text) <= fits else text[: fits - 1] + "…"
