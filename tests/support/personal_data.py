"""For the identity-code tests: a world with something in every state, a search of a whole
database for codes, and a SQLite database rewound between requests."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import JSON, String, select
from sqlalchemy.engine import Engine

from lainaamo.privacy import find_identity_code
from server.adapters import orm
from server.adapters.text_guard import MACHINE_MADE
from support.fleet import Fleet


def texts(engine: Engine) -> Iterator[tuple[str, Any]]:
    """("table.column[row]", value) of every text in the database that a person could have
    written: every String, Text and JSON column of every table, the audit log's included;
    only the machine-made ones (hashes, tokens, SDPs), where a code shows by chance, are not."""
    with engine.connect() as connection:
        for table in orm.Base.metadata.sorted_tables:
            columns = [
                c
                for c in table.columns
                if isinstance(c.type, String | JSON) and MACHINE_MADE not in c.info
            ]
            if not columns:
                continue
            key = list(table.primary_key.columns)
            for row in connection.execute(select(*key, *columns)):
                values: dict[str, Any] = row._mapping
                ids = ",".join(str(values[k.name]) for k in key)
                for column in columns:
                    if values[column.name] is not None:
                        yield f"{table.name}.{column.name}[{ids}]", values[column.name]


def leaks(engine: Engine) -> list[str]:
    """Where in the database a text holds an identity code."""
    return [where for where, value in texts(engine) if find_identity_code(value) is not None]


def stored(engine: Engine, needle: str) -> bool:
    """Whether any text of the database contains `needle`."""
    return any(needle in json.dumps(value, ensure_ascii=False) for _, value in texts(engine))


class SqliteSnapshot:
    """A copy of a SQLite database taken once and put back as often as needed (the backup
    API, so that the app's pooled connections see the rewound content)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._copy = sqlite3.connect(":memory:", check_same_thread=False)
        with engine.connect() as connection:
            connection.connection.driver_connection.backup(self._copy)  # type: ignore[union-attr]

    def restore(self) -> None:
        with self._engine.connect() as connection:
            self._copy.backup(connection.connection.driver_connection)  # type: ignore[arg-type]

    def close(self) -> None:
        self._copy.close()


class World:
    """A fleet with a loan in every state, a device awaiting a wipe, a staff-locked device,
    an online device, an agreement and an enrollment token; `values` names them."""

    def __init__(self, fleet: Fleet, client: FlaskClient) -> None:
        self.fleet, self.client = fleet, client
        self.values: dict[str, Any] = {
            "<username>": fleet.logins["counsellor"].username,
            "<password>": fleet.logins["counsellor"].password,
        }
        self.api("admin", "POST", "/agreements", {"version": "2026-1", "text": "Terms."})
        ids = {}
        for state, device in (("requested", None), ("ready", "tab-001"), ("on_loan", "tab-004")):
            ids[state] = self.request_loan(device, handover=state == "on_loan")
        ids["paused"] = self.request_loan("tab-007", handover=True)
        self.api("counsellor", "POST", f"/loans/{ids['paused']}/pause", {"reason": "hospital"})
        # An open proposal that the client keeps the device, for IT support to approve or decline.
        self.api("counsellor", "POST", f"/loans/{ids['paused']}/keep", {"reason": "stays online"})
        self.values["<paused device>"] = "tab-007"
        self.values |= {f"<{state}>": str(loan_id) for state, loan_id in ids.items()}
        self.values["<on_loan device>"] = "tab-004"
        self.values["<quiet>"] = str(self.request_loan("tab-006", handover=True, unit="paihde"))
        new = {"device_id": "tab-010", "asset_tag": "ES-10", "unit": "aikuissosiaalityo"}
        self.api("it_support", "POST", "/devices", new)
        returned = self.request_loan("tab-002", handover=True, unit="mielenterveys")
        self.api("it_support", "POST", f"/loans/{returned}/return", {})
        self.values["<wiped>"] = "tab-002"  # awaiting a wipe
        token = self.api("it_support", "POST", "/enrollment-tokens", {})["token"]
        self.values["<enrollment token>"] = token
        with fleet.services.session_factory() as session:
            for device in ("tab-003", "tab-004"):
                status = session.get(orm.DeviceStatus, device)
                assert status is not None
                status.online, status.last_seen_at = True, fleet.services.clock()
            session.commit()
        self.values["<online device>"] = "tab-003"
        self.api("it_support", "POST", "/devices/tab-005/lock", {"reason": "found"})
        self.values["<staff-locked>"] = "tab-005"
        # A remote group of the on-loan client, a week ahead (issue 20.3).
        self.values["<on_loan id>"] = ids["on_loan"]
        self.values["<next week>"] = (fleet.services.clock() + timedelta(days=7)).date().isoformat()
        group = {
            "unit": "aikuissosiaalityo",
            "title": "Tiistairyhmä",
            "date": self.values["<next week>"],
            "time": "14:00",
            "minutes": 60,
            "participants": [ids["on_loan"]],
            "join_url": "https://meet.example.org/room",
        }
        self.values["<group>"] = str(self.api("counsellor", "POST", "/groups", group)["id"])
        with fleet.services.session_factory() as session:
            self.user_ids = {
                user.role: user.id
                for user in session.scalars(select(orm.User).order_by(orm.User.id))
            }

    def api(self, role: str, method: str, path: str, body: Any) -> Any:
        response = self.send(role, method, path, body)
        assert response.status_code < 300, (path, response.status_code, response.json)
        return response.json

    def send(self, role: str, method: str, path: str, body: Any = None) -> Any:
        headers = self.fleet.headers(role)
        return self.client.open(f"/api/v1{path}", method=method, json=body, headers=headers)

    def request_loan(self, device: str | None, handover: bool, unit: str = "") -> int:
        role = "it_support" if unit else "counsellor"
        body = {"unit": unit or "aikuissosiaalityo", "client_ref": f"ASK-{device or 'q'}"}
        loan_id = int(self.api(role, "POST", "/loans", body)["loan_id"])
        if device:
            # The world's requests are served out of queue order: say why (issue 19.6).
            body = {"device_id": device, "skip_reason": "test world"}
            self.api(role, "POST", f"/loans/{loan_id}/assign", body)
        if handover:
            step = {"agreement_version": "2026-1", "agreement_accepted": True}
            self.api(role, "POST", f"/loans/{loan_id}/handover", step)
        return loan_id

    def fill(self, value: Any) -> Any:
        """A copy of a body with the world's ids in place of its <placeholders>."""
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return self.values.get(value, value) if isinstance(value, str) else value
