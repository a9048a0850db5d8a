"""The console's SVG charts, checked on their geometry: the produced SVG is parsed and every
point, bar and label must lie inside the viewBox; the x axis spans the period asked for;
single points, withheld figures and empty charts all show; count axes count in whole steps;
every chart has a visible title and every mark a value on hover and focus (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.svg_charts import (
    NS,
    assert_accessible,
    assert_inside,
    classes,
    no_data,
    number,
    parse,
    plot_edges,
    points,
    visible_markers,
    visible_title,
    withheld_marks,
    x_ticks,
    y_labels,
)

from server.entrypoints.console import charts, i18n
from server.entrypoints.console.charts import Series, Withheld
from server.service_layer.reports import period_months

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch) -> None:
    """The charts' own words in English (outside a request the console speaks Finnish)."""
    monkeypatch.setattr(i18n, "current_language", lambda: "en")


def battery(days: int, reports: list[tuple[datetime, float | None]]) -> str:
    start = NOW - timedelta(days=days)
    return charts.line_chart(
        "Battery over the last days",
        "Battery of each report.",
        [Series("Battery", [(at.timestamp(), pct) for at, pct in reports])],
        x_range=(start.timestamp(), NOW.timestamp()),
        x_labels=charts.time_labels(start, NOW, lambda t: t.strftime("%d.%m."), 8),
        y_max=100,
        y_unit="%",
    )


# --- the x axis spans the period ---------------------------------------------------------


@pytest.mark.parametrize("days", [1, 7, 30])
def test_two_minutes_of_data_on_a_whole_period(days: int) -> None:
    """The bug: 7 days spread two minutes of reports over the width, labels far off it."""
    root = assert_inside(
        battery(days, [(NOW - timedelta(minutes=2), 80.0), (NOW - timedelta(minutes=1), 79.0)])
    )
    left, right, _bottom = plot_edges(root)
    ticks = x_ticks(root)
    assert len(ticks) == 8
    assert ticks[0] == pytest.approx(left, abs=0.1) and ticks[-1] == pytest.approx(right, abs=0.1)
    assert ticks == sorted(ticks)
    line = next(root.iter(f"{NS}polyline"))
    xs = [float(p.split(",")[0]) for p in line.attrib["points"].split()]
    # Two minutes of 1–30 days: at the right edge, within a pixel or two.
    assert all(right - 2 <= x <= right for x in xs)


def test_reports_outside_the_period_are_left_out() -> None:
    root = assert_inside(
        battery(1, [(NOW - timedelta(days=3), 50.0), (NOW - timedelta(hours=1), 60.0)])
    )
    assert len(points(root)) == 1 and not list(root.iter(f"{NS}polyline"))


def test_time_labels_cover_start_and_end() -> None:
    start = NOW - timedelta(days=7)
    labels = charts.time_labels(start, NOW, lambda t: t.strftime("%d.%m."), 8)
    assert labels[0][0] == start.timestamp() and labels[-1][0] == NOW.timestamp()
    assert [text for _x, text in labels] == ["30.11.", *(f"{d:02d}.12." for d in range(1, 8))]
    helsinki = charts.time_labels(
        start, NOW, lambda t: t.strftime("%H:%M"), 2, tz=ZoneInfo("Europe/Helsinki")
    )
    assert [text for _x, text in helsinki] == ["14:00", "14:00"]


# --- every series with data shows; gaps stay gaps ------------------------------------------


def test_a_single_point_is_a_visible_marker() -> None:
    for svg in (
        charts.line_chart("Loans started", "d", [Series("Started", [(0, 7.0)])]),
        charts.line_chart("Loans started", "d", [Series("Started", [(0, None), (1, 7.0)])]),
        battery(7, [(NOW - timedelta(hours=5), 42.0)]),
    ):
        root = assert_inside(svg)
        assert len(visible_markers(root)) == 1
        assert not no_data(root)
        assert_accessible(root)


def test_gaps_break_the_line_and_isolated_points_are_marked() -> None:
    many = [(float(i), float(i % 50)) for i in range(200)]
    many[100] = (100.0, None)
    many[102] = (102.0, None)  # 101 stands alone between two gaps
    root = assert_inside(charts.line_chart("Hours", "d", [Series("h", many)]))
    lines = list(root.iter(f"{NS}polyline"))
    assert len(lines) == 2
    assert [len(pl.attrib["points"].split()) for pl in lines] == [100, 97]
    # Dense: not every point is marked, but the isolated one is.
    marked = visible_markers(root)
    assert len(marked) == 1
    assert 1 <= len(points(root)) <= charts.MAX_TARGETS + 2


def test_sparse_series_mark_every_point() -> None:
    root = assert_inside(
        charts.line_chart("Hours", "d", [Series("h", [(float(i), float(i)) for i in range(12)])])
    )
    assert len(visible_markers(root)) == 12 == len(points(root))
    assert_accessible(root)


# --- withheld figures look withheld ---------------------------------------------------------


def test_withheld_bars_are_hatched_not_zero() -> None:
    svg = charts.bar_chart(
        "Loans started per month",
        "Loans handed over in each month.",
        ["2026-01", "2026-02", "2026-03"],
        [("Started", [Withheld("< 5"), 7, 0])],
        counts=True,
    )
    root = assert_inside(svg)
    marks = withheld_marks(root)
    assert len(marks) == 1
    assert float(marks[0].attrib["height"]) >= 8
    assert marks[0].attrib["fill"].startswith("url(#")
    assert "< 5" in "".join(t for e in root.iter(f"{NS}text") for t in e.itertext())
    names = [g.attrib["aria-label"] for g in points(root)]
    assert any("withheld (< 5)" in n for n in names)
    assert any(n.endswith(": 7") for n in names)
    # The legend and the description say what the hatching means.
    assert "Withheld (< 5)" in [t.text for t in root.iter(f"{NS}text")]
    desc = root.find(f"{NS}desc")
    assert desc is not None and desc.text and "withheld" in desc.text
    bars = [e for e in root.iter(f"{NS}rect") if "bar" in classes(e)]
    assert len(bars) == 1  # 7; the withheld one is no ordinary bar
    zeros = [e for e in root.iter(f"{NS}line") if "zero" in classes(e)]
    assert len(zeros) == 1  # 0: a stroke on the baseline, not nothing
    assert_accessible(root)


def test_withheld_points_on_a_line_are_marked_and_break_it() -> None:
    svg = charts.line_chart(
        "Screen-on hours per week",
        "d",
        [Series("h", [(0, 3.0), (1, Withheld("< 5")), (2, 4.0), (3, 5.0)])],
    )
    root = assert_inside(svg)
    assert len(withheld_marks(root)) == 1
    assert len(list(root.iter(f"{NS}polyline"))) == 1  # 2–3 only; 0 stands alone
    assert len(visible_markers(root)) == 3
    assert "< 5" in [t.text for t in root.iter(f"{NS}text")]


def test_no_figure_is_a_dash_not_a_zero_bar() -> None:
    root = assert_inside(charts.bar_chart("Utilisation", "d", ["A", "B"], [("U", [None, 50.0])]))
    assert [e.text for e in root.iter(f"{NS}text") if "no-figure" in classes(e)] == ["–"]
    assert len([e for e in root.iter(f"{NS}rect") if "bar" in classes(e)]) == 1


# --- axes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("high", [0, 1, 2, 3, 4, 7, 13, 38, 99, 101, 1234])
def test_count_axes_count_in_whole_steps(high: int) -> None:
    root = assert_inside(
        charts.bar_chart("Loans", "d", ["A", "B"], [("n", [high, 1])], counts=True)
    )
    labels = y_labels(root)
    values = [number(label) for label in labels]
    assert all(v.is_integer() for v in values), labels
    assert values[0] == 0 and values[-1] >= high and len(values) <= 6
    assert values == sorted(values) and len(set(values)) == len(values)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.booleans())
def test_nice_ticks(high: float, counts: bool) -> None:
    ticks = charts.nice_ticks(high, counts)
    assert ticks[0] == 0 and ticks[-1] >= high and 2 <= len(ticks) <= 6
    steps = {round(b - a, 6) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    if counts:
        assert all(t.is_integer() for t in ticks)


# --- title and no data --------------------------------------------------------------------


def test_every_chart_has_a_visible_title() -> None:
    for svg in (
        battery(7, [(NOW, 50.0)]),
        charts.bar_chart("Utilisation per unit", "d", ["A"], [("U", [50.0])]),
        charts.line_chart("Utilisation per unit", "d", []),
    ):
        root = assert_inside(svg)
        assert visible_title(root) in ("Battery over the last days", "Utilisation per unit")


def test_no_data_shows_a_message_instead_of_axes() -> None:
    for svg in (
        battery(7, []),
        charts.line_chart("Hours", "d", [Series("h", [(0, None), (1, None)])]),
        charts.bar_chart("Loans", "d", [], [("n", [])]),
        charts.bar_chart("Loans", "d", ["A", "B"], [("n", [None, None])]),
    ):
        root = assert_inside(svg)
        assert no_data(root)
        assert not y_labels(root) and not x_ticks(root) and not points(root)
    root = parse(charts.bar_chart("Loans", "d", ["A"], [("n", [0])], counts=True))
    assert not no_data(root)  # zero is a figure


# --- random data: everything inside the viewBox -------------------------------------------

LABEL = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x17F, exclude_categories=["Cs"]),
    min_size=0,
    max_size=60,
)
VALUE = st.one_of(
    st.none(),
    st.just(Withheld("< 5")),
    st.floats(min_value=0, max_value=1e5, allow_nan=False),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    days=st.integers(min_value=1, max_value=60),
    offsets=st.lists(st.floats(min_value=-2, max_value=1.5), max_size=80),
    values=st.lists(VALUE, max_size=80),
    title=LABEL,
    label=LABEL,
    count=st.integers(min_value=2, max_value=12),
)
def test_random_lines_stay_inside(
    days: int,
    offsets: list[float],
    values: list[float | Withheld | None],
    title: str,
    label: str,
    count: int,
) -> None:
    start = NOW - timedelta(days=days)
    period = NOW - start
    xs = sorted((start + period * f).timestamp() for f in offsets)
    svg = charts.line_chart(
        title,
        "d",
        [Series(label, list(zip(xs, values, strict=False)))],
        x_range=(start.timestamp(), NOW.timestamp()),
        x_labels=charts.time_labels(start, NOW, lambda t: t.strftime("%d.%m. %H:%M"), count),
        y_unit="%",
    )
    root = assert_inside(svg)
    assert_accessible(root)
    lo, hi = start.timestamp(), NOW.timestamp()
    inside = [y for x, y in zip(xs, values, strict=False) if lo <= x <= hi and y is not None]
    assert no_data(root) == (not inside)
    if inside:
        left, right, _bottom = plot_edges(root)
        ticks = x_ticks(root)
        assert ticks[0] == pytest.approx(left, abs=0.1)
        assert ticks[-1] == pytest.approx(right, abs=0.1)
        assert len(withheld_marks(root)) == sum(isinstance(y, Withheld) for y in inside)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    categories=st.lists(LABEL, max_size=40),
    series=st.lists(st.tuples(LABEL, st.lists(VALUE, max_size=40)), min_size=1, max_size=3),
    counts=st.booleans(),
    title=LABEL,
)
def test_random_bars_stay_inside(
    categories: list[str],
    series: list[tuple[str, list[float | Withheld | None]]],
    counts: bool,
    title: str,
) -> None:
    if counts:
        series = [
            (name, [round(v) if isinstance(v, float) else v for v in vs]) for name, vs in series
        ]
    root = assert_inside(charts.bar_chart(title, "d", categories, series, counts=counts))
    assert_accessible(root)
    shown = [v for _name, vs in series for v in vs[: len(categories)]]
    assert no_data(root) == all(v is None for v in shown)
    if not no_data(root):
        assert len(withheld_marks(root)) == sum(isinstance(v, Withheld) for v in shown)
        assert all(float(m.attrib["height"]) >= 8 for m in withheld_marks(root))
        if counts:
            assert all(number(label).is_integer() for label in y_labels(root))


def test_the_months_of_a_report_period() -> None:
    """The per-month chart spans the period: its UTC months, not one the Helsinki midnight
    touches for an hour or two."""
    helsinki = ZoneInfo("Europe/Helsinki")

    def at(y: int, m: int, d: int) -> datetime:
        return datetime(y, m, d, tzinfo=helsinki).astimezone(UTC)

    assert period_months(at(2026, 1, 1), at(2026, 2, 1)) == ["2026-01"]
    assert period_months(at(2026, 7, 1), at(2026, 7, 2)) == ["2026-07"]
    assert period_months(at(2025, 11, 8), at(2026, 2, 8)) == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    assert len(period_months(at(2024, 1, 1), at(2027, 1, 1))) == 36


def test_the_battery_line_breaks_where_the_tablet_was_offline() -> None:
    from server.entrypoints.console.device import battery_runs
    from server.service_layer.device_page import HistoryPoint

    def at(minutes: int, pct: int) -> HistoryPoint:
        return HistoryPoint(NOW + timedelta(minutes=minutes), pct, False, "wifi", False)

    points = [at(0, 90), at(5, 89), at(10, 88), at(300, 60), at(305, 59)]
    online = [
        (NOW, NOW + timedelta(minutes=11)),
        (NOW + timedelta(minutes=299), NOW + timedelta(minutes=306)),
    ]
    runs = battery_runs(points, online)
    assert [y for _x, y in runs] == [90, 89, 88, None, 60, 59]
    # Drawn: two polylines, none across the five offline hours.
    svg = str(
        charts.line_chart(
            "Battery",
            "d",
            [Series("Battery", runs)],
            x_range=(NOW.timestamp(), (NOW + timedelta(minutes=305)).timestamp()),
        )
    )
    assert svg.count("<polyline") == 2
