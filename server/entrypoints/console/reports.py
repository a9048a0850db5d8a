"""Programme reports for regional administrators: per-unit figures, charts and a CSV export
(the table per unit; `table=contact_months`: support contacts per month, unit and channel).

Figures come from `service_layer.reports`; counts under 5 are already withheld there.
Dates are calendar days in Helsinki time; the period is [start, end): `end` is not included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, request

from lainaamo.errors import InvalidInput
from server.domain.contact_figures import CONTACT_CHANNELS_REPORTED as CHANNELS
from server.domain.disclosure import Shown, Suppressed
from server.domain.model import Role
from server.domain.usage import CATEGORIES
from server.entrypoints.console import charts
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import form_error, principal, render, roles
from server.entrypoints.console.i18n import _, fmt_date, fmt_number, fmt_percent
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import reports as report_service
from server.service_layer import spreadsheet
from server.service_layer.reports import FIELDS, Report, Row

HELSINKI = ZoneInfo("Europe/Helsinki")
MAX_DAYS = 3 * 366


def presets(today: date) -> dict[str, tuple[date, date]]:
    """Period presets as [start, end) dates."""
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    last_q_end = quarter_start
    last_q_start = date(
        last_q_end.year if last_q_end.month > 3 else last_q_end.year - 1,
        (last_q_end.month - 4) % 12 + 1,
        1,
    )
    return {
        "last30": (today - timedelta(days=29), today + timedelta(days=1)),
        "year": (date(today.year, 1, 1), today + timedelta(days=1)),
        "quarter": (last_q_start, last_q_end),
    }


def _day(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"invalid {name}", [{"field": name, "message": _("A date, e.g. 2026-01-31")}]
        ) from None


def parse_period(args: Any, today: date) -> tuple[date, date]:
    """The period asked for (a preset or start/end dates); 30 days by default."""
    preset = args.get("preset", "")
    choices = presets(today)
    if preset in choices:
        return choices[preset]
    if not args.get("start") and not args.get("end"):
        return choices["last30"]
    start = _day("start", args.get("start", ""))
    end = _day("end", args.get("end", ""))
    if end <= start:
        raise InvalidInput(
            "the end must come after the start",
            [{"field": "end", "message": _("After the start date")}],
        )
    if (end - start).days > MAX_DAYS:
        raise InvalidInput(
            "the period is too long", [{"field": "end", "message": _("At most three years")}]
        )
    return start, end


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(0), HELSINKI).astimezone(UTC)


def csv_cell(value: Shown, percent: bool = False, decimal: str = ".") -> str:
    """A figure for the CSV: empty when withheld (the `withheld` column says so) or when there
    is none; `decimal` is the decimal mark."""
    if value is None or isinstance(value, Suppressed):
        return ""
    if isinstance(value, float):
        text = f"{value * 100:.1f}" if percent else f"{value:.1f}"
        return text.replace(".", decimal)
    return str(value)


PERCENT = frozenset({"utilisation", "overdue_rate", "remote_support_share"})
WITHHELD = "withheld"  # the column naming a row's withheld figures (counts under 5)


def csv_rows(report: Report, decimal: str = ".") -> list[list[str]]:
    """The table as CSV rows: numbers only in the figures' columns; a withheld figure's cell
    is empty and its column is named in the row's `withheld` column (space-separated)."""
    figures = FIELDS[2:]
    rows: list[list[str]] = [["unit_code", "unit_name", *figures, WITHHELD]]
    for row in [*report.rows, report.total]:
        code = row.code or "region"
        name = row.name or "Region total"
        values = {f: getattr(row, f) for f in figures}
        withheld = " ".join(f for f in figures if isinstance(values[f], Suppressed))
        cells = [csv_cell(values[f], f in PERCENT, decimal) for f in figures]
        rows.append([code, name, *cells, withheld])
    return rows


def contact_month_rows(report: Report, decimal: str = ".") -> list[list[str]]:
    """Support contacts per month (UTC), unit and channel as CSV rows, withheld like the table
    per unit (the `withheld` column names a row's withheld channels)."""
    rows: list[list[str]] = [["month", "unit_code", "unit_name", *CHANNELS, WITHHELD]]
    for line in report.contact_months:
        values = [line.channels[channel] for channel in CHANNELS]
        withheld = " ".join(
            ch for ch, v in zip(CHANNELS, values, strict=True) if isinstance(v, Suppressed)
        )
        code, name = line.code or "region", line.name or "Region total"
        rows.append([line.month, code, name, *(csv_cell(v, False, decimal) for v in values)])
        rows[-1].append(withheld)
    return rows


CSV_TABLES = {"": csv_rows, "contact_months": contact_month_rows}


# CSV variants: (decimal mark, delimiter, byte order mark, file name suffix). `excel` is for
# Excel in Finnish (or Swedish) settings: it splits at semicolons, reads a decimal comma and
# needs the BOM to read UTF-8.
CSV_VARIANTS = {"": (".", ",", False, ""), "excel": (",", ";", True, "-excel")}


def chart_value(v: Shown, scale: float = 1.0) -> charts.Value:
    """A figure for a chart: a number, withheld (drawn as such, never as zero) or none.

    A withheld mark claims no bound: a count withheld to protect another may be larger."""
    if isinstance(v, Suppressed):
        return charts.Withheld(str(v))
    return v * scale if isinstance(v, int | float) else None


def _charts(report: Report) -> dict[str, Any]:
    names = [r.name for r in report.rows]
    shares = [chart_value(r.utilisation, 100) for r in report.rows]
    utilisation = charts.bar_chart(
        _("Utilisation per unit"),
        _("Loan days as a share of available device days, per unit."),
        names,
        [(_("Utilisation"), shares)],
        y_unit="%",
        # On 0–100 %, or higher when pool devices take a unit above it.
        y_max=max([100.0, *(v for v in shares if isinstance(v, float | int))]),
    )
    flow = charts.bar_chart(
        _("Loans started and ended per unit"),
        _("Loans handed over and loans ended in the period, per unit."),
        names,
        [
            (_("Started"), [chart_value(r.started) for r in report.rows]),
            (_("Ended"), [chart_value(r.ended) for r in report.rows]),
        ],
        counts=True,
    )
    trend = charts.bar_chart(
        _("Loans started per month in the region"),
        _("Loans handed over in each calendar month of the period."),
        [m for m, _v in report.months],
        [(_("Started"), [chart_value(v) for _m, v in report.months])],
        counts=True,
    )
    weeks = len(report.weeks)
    usage = charts.line_chart(
        _("Screen-on hours per week in the region"),
        _("Hours the tablets on loan were in use in each week."),
        [
            charts.Series(
                _("Screen-on (h)"),
                [(i, chart_value(v)) for i, (_w, v) in enumerate(report.weeks)],
            )
        ],
        x_range=(0, weeks - 1) if weeks > 1 else (-0.5, 0.5),
        x_labels=_week_labels(report),
        x_text=lambda i: _("Week starting %(day)s", day=fmt_date(report.weeks[int(i)][0])),
    )
    return {
        "utilisation_chart": utilisation,
        "flow_chart": flow,
        "trend_chart": trend,
        "usage_chart": usage,
        "contacts_chart": _contacts_chart(report),
    }


def channel_titles() -> dict[str, str]:
    """The contact channels' names, for the report's columns and chart."""
    return {
        "phone": _("Phone calls"),
        "home_visit": _("Home visits"),
        "chat": _("Chats"),
        "remote_support": _("Remote support"),
    }


def _contacts_chart(report: Report) -> Any:
    """Contacts per month in the region by channel; none when the period has no contacts
    (the section says so in words)."""
    region = [line for line in report.contact_months if not line.code]
    if not any(v != 0 for line in region for v in line.channels.values()):
        return None
    titles = channel_titles()
    return charts.bar_chart(
        _("Support contacts per month in the region"),
        _("Phone calls, home visits, chats and remote-support sessions in each month."),
        [line.month for line in region],
        [
            (titles[channel], [chart_value(line.channels[channel]) for line in region])
            for channel in CHANNELS
        ],
        counts=True,
    )


def _week_labels(report: Report) -> list[tuple[float, str]]:
    """At most about eight dates under the weekly chart (d.m.)."""
    step = max(1, (len(report.weeks) + 7) // 8)
    return [(i, f"{w.day}.{w.month}.") for i, (w, _v) in enumerate(report.weeks) if i % step == 0]


def usage_categories() -> list[tuple[str, str]]:
    """(category, translated column title) of the launch categories, in protocol order."""
    titles = {
        "chat": _("Chat"),
        "appointment": _("Appointments"),
        "digipath": _("Digital paths"),
        "group": _("Groups"),
        "other": _("Other apps"),
    }
    return [(category, titles[category]) for category in CATEGORIES]


def _report(start: date, end: date, export: bool = False) -> Report:
    """The report of [start, end); the handler audits the view or the export."""
    svc = services()
    return report_service.read_report(
        svc.uow(), principal(), _instant(start), _instant(end), svc.clock(), export
    )


@bp.get("/reports")
@roles(Role.ADMIN)
def reports() -> tuple[str, int]:
    today = services().clock().astimezone(HELSINKI).date()
    try:
        start, end = parse_period(request.args, today)
    except InvalidInput as exc:
        return render(
            "reports/index.html",
            http_status(exc),
            report=None,
            errors=form_error(exc),
            start=request.args.get("start", ""),
            end=request.args.get("end", ""),
        )
    report = _report(start, end)
    return render(
        "reports/index.html",
        report=report,
        errors={},
        start=start.isoformat(),
        end=end.isoformat(),
        last_day=end - timedelta(days=1),
        fmt=_display,
        usage_categories=usage_categories(),
        channels=list(channel_titles().items()),
        **_charts(report),
    )


@bp.get("/reports.csv")
@roles(Role.ADMIN)
def reports_csv() -> Response:
    today = services().clock().astimezone(HELSINKI).date()
    start, end = parse_period(request.args, today)
    variant = request.args.get("variant", "")
    if variant not in CSV_VARIANTS:
        raise InvalidInput("unknown variant", [{"field": "variant", "message": "excel"}])
    table = request.args.get("table", "")
    if table not in CSV_TABLES:
        raise InvalidInput("unknown table", [{"field": "table", "message": "contact_months"}])
    decimal, delimiter, bom, suffix = CSV_VARIANTS[variant]
    report = _report(start, end, export=True)
    name = f"-{table.replace('_', '-')}" if table else ""
    filename = f"lainaamo-report{name}-{start.isoformat()}-{end.isoformat()}{suffix}.csv"
    lines = CSV_TABLES[table](report, decimal)
    text = "".join(spreadsheet.csv_lines(lines, bom=bom, delimiter=delimiter))
    return Response(
        text.encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _display(value: Shown, kind: str = "count") -> str:
    """A figure for the HTML table."""
    if value is None:
        return "–"
    if isinstance(value, Suppressed):
        return str(value)
    if kind == "percent":
        return fmt_percent(float(value))
    if kind == "days":
        return fmt_number(float(value), 1)
    if kind == "minutes":
        return fmt_number(float(value), 0)
    return fmt_number(value, 0)


__all__ = ["Row", "csv_rows", "parse_period", "presets"]
