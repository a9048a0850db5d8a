"""How the fleet overview shows a device's facts: cell texts and badge tones.

The page and its live updates use the same `Cells`, so an update changes a cell only when
what it says really changed. A `Formatter` is made in the request (it translates its labels
then) and works afterwards without one, inside a streamed response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from babel import Locale
from babel.dates import format_datetime, format_time
from babel.numbers import format_decimal
from flask import url_for

from server.domain.fleet_triage import UNSEEN_DAYS, Problem
from server.domain.model import LifecycleState
from server.domain.policy_state import PolicyState
from server.entrypoints.console.i18n import TIMEZONE, current_language, ngettext
from server.entrypoints.console.i18n import gettext as _
from server.service_layer.fleet_console import Facts, Sort

# A cell: its text and a badge tone ("" = plain text). Tones repeat what the text says.
Cell = tuple[str, str]
Cells = dict[str, Cell]
FIELDS = ("state", "lock", "online", "battery", "last_seen", "drift")


def state_labels() -> dict[str, str]:
    return {
        LifecycleState.IN_STOCK.value: _("In stock"),
        LifecycleState.ON_LOAN.value: _("On loan"),
        LifecycleState.AWAITING_WIPE.value: _("Awaiting wipe"),
        LifecycleState.IN_REPAIR.value: _("In repair"),
        LifecycleState.LOST.value: _("Lost"),
        LifecycleState.RETIRED.value: _("Retired"),
        LifecycleState.RELEASED.value: _("Released"),
    }


def problem_labels() -> dict[Problem, str]:
    """The problem tiles' labels (domain/fleet_triage.py), in the order the page shows them."""
    return {
        Problem.OFFLINE: _("Offline now"),
        Problem.UNSEEN: ngettext(
            "Not seen for %(num)s day or more", "Not seen for %(num)s days or more", UNSEEN_DAYS
        ),
        Problem.LOW_BATTERY: _("Low battery, not charging"),
        Problem.OUT_OF_SYNC: _("Out of sync"),
        Problem.AWAITING_WIPE: _("Awaiting wipe"),
        Problem.STAFF_LOCKED: _("Locked by IT"),
        Problem.LOST: _("Lost"),
    }


@dataclass(frozen=True)
class Column:
    """A column header of the list: its label, and for a sortable one where a click leads."""

    key: str
    label: str
    url: str = ""  # "": not sortable
    aria_sort: str = ""  # ascending | descending on the sorted column, else ""
    numeric: bool = False


SORTABLE = frozenset({"id", "asset_tag", "model", "unit", "state", "battery", "last_seen"})


def columns(sort: Sort, filters: dict[str, str]) -> list[Column]:
    """The list's headers; a sortable one links to the list sorted by it (ascending first,
    the other way round when it is the sorted column already), filters kept, first page."""
    labels = [
        ("id", _("Device")),
        ("asset_tag", _("Asset tag")),
        ("model", _("Model")),
        ("unit", _("Unit")),
        ("state", _("State")),
        ("lock", _("Staff lock")),
        ("online", _("Connection")),
        ("battery", _("Battery")),
        ("last_seen", _("Last seen")),
        ("drift", _("Policy")),
    ]
    out = []
    for key, label in labels:
        if key not in SORTABLE:
            out.append(Column(key, label))
            continue
        current = sort.column == key
        values = {**filters, **({"sort": key} if key != "id" else {})}
        if current and not sort.descending:
            values["dir"] = "desc"
        aria = ("descending" if sort.descending else "ascending") if current else ""
        url = url_for("console.devices", **values)  # type: ignore[arg-type]
        out.append(Column(key, label, url, aria, numeric=key == "battery"))
    return out


@dataclass(frozen=True)
class Formatter:
    language: str
    labels: dict[str, str]
    states: dict[str, str]

    @classmethod
    def current(cls) -> Formatter:
        """Made inside a request: its labels in the request's language."""
        return cls(
            language=current_language(),
            labels={
                "online": _("Online"),
                "offline": _("Offline"),
                "stale": _("Stale"),
                "low": _("%(pct)s, low"),
                "drift": _("Not converged"),
                "converged": _("Converged"),
                "not_enforced": _("Not enforced"),
                "unreported": _("Enforcement not reported"),
                "staff_locked": _("Locked by IT"),
                "none": "–",
            },
            states=state_labels(),
        )

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.language)

    def when(self, value: datetime | None) -> str:
        if value is None:
            return self.labels["none"]
        return str(format_datetime(value, "short", tzinfo=TIMEZONE, locale=self.locale))

    def clock(self, value: datetime) -> str:
        return str(format_time(value, "medium", tzinfo=TIMEZONE, locale=self.locale))

    def number(self, value: int) -> str:
        return str(format_decimal(value, "#,##0", locale=self.locale))

    def cells(self, facts: Facts) -> Cells:
        tone = {"online": "ok", "offline": "muted", "stale": "warn"}[facts.presence]
        if facts.battery_pct is None:
            battery: Cell = (self.labels["none"], "")
        else:
            pct = f"{facts.battery_pct} %"
            battery = (self.labels["low"] % {"pct": pct}, "bad") if facts.low_battery else (pct, "")
        return {
            "state": (self.states.get(facts.lifecycle_state, facts.lifecycle_state), ""),
            "lock": (self.labels["staff_locked"], "warn")
            if facts.staff_locked
            else (self.labels["none"], ""),
            "online": (self.labels[facts.presence], tone),
            "battery": battery,
            "last_seen": (self.when(facts.last_seen_at), ""),
            "drift": self.policy(facts.policy),
        }

    def policy(self, state: PolicyState | None) -> Cell:
        """The policy column: converged, or which way the device is in drift (none: no policy).

        Not converged: the tablet has not applied its policy yet; not enforced: it has, but
        reports keys it cannot enforce or failed to; not reported: its agent does not say."""
        if state is None:
            return (self.labels["none"], "")
        return {
            PolicyState.CONVERGED: (self.labels["converged"], "ok"),
            PolicyState.PENDING: (self.labels["drift"], "warn"),
            PolicyState.NOT_ENFORCED: (self.labels["not_enforced"], "bad"),
            PolicyState.UNREPORTED: (self.labels["unreported"], "warn"),
        }[state]
