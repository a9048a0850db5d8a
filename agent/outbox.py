"""The agent's on-disk outbox: every status report and command ack waits here until PUBACK.

One SQLite file (WAL) with one row per message. A row is deleted only when the broker has
acknowledged it, so neither a lost connection nor a restart of the agent loses a report.
The outbox is bounded: beyond `max_rows` the oldest rows are dropped (and counted).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL,
    retain  INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class OutboxRow:
    """One message waiting for the broker's acknowledgement; `id` orders rows oldest first."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """A bounded, durable FIFO of messages to publish."""

    def __init__(self, path: str | Path, max_rows: int, *, durable: bool = True) -> None:
        if max_rows < 1:
            raise ValueError(f"outbox max_rows must be at least 1, not {max_rows}")
        self.path = Path(path)
        self.max_rows = max_rows
        self.dropped = 0
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL survives a power cut (a tablet whose battery dies); NORMAL only a process
        # crash, which is enough for the simulator and spares a fsync per message.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute(_SCHEMA)

    def add(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Append a message and return its row id, dropping the oldest rows beyond the bound."""
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                (topic, payload, qos, int(retain)),
            )
            row_id = cursor.lastrowid
            assert row_id is not None
            excess = self._count() - self.max_rows
            if excess > 0:
                self._db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                    (excess,),
                )
        if excess > 0:
            self.dropped += excess
            log.warning(
                "outbox %s full (%d rows): dropped the %d oldest (%d dropped since start)",
                self.path,
                self.max_rows,
                excess,
                self.dropped,
            )
        return row_id

    def pending(self, limit: int, exclude: Collection[int] = ()) -> list[OutboxRow]:
        """The oldest `limit` rows whose ids are not in `exclude`, oldest first."""
        rows: list[OutboxRow] = []
        cursor = self._db.execute("SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id")
        for row_id, topic, payload, qos, retain in cursor:
            if len(rows) >= limit:
                break
            if row_id not in exclude:
                rows.append(OutboxRow(row_id, topic, bytes(payload), qos, bool(retain)))
        cursor.close()
        return rows

    def remove(self, row_id: int) -> None:
        """Forget a row the broker has acknowledged (no error if it was dropped meanwhile)."""
        with self._db:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def __len__(self) -> int:
        return self._count()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)


class InFlight:
    """Which outbox rows the MQTT client holds right now, by the client's message id.

    The client (paho) resends what it holds after a reconnect by itself, so a row is handed
    over once and stays here until its PUBACK, across reconnects. At most `window` rows are
    held at a time, so a long outbox drains without flooding the client's queue.
    """

    def __init__(self, outbox: Outbox, window: int) -> None:
        self.outbox = outbox
        self.window = window
        self._rows: dict[int, int] = {}  # message id -> row id

    def __len__(self) -> int:
        return len(self._rows)

    def fill(self, publish: Callable[[OutboxRow], int | None]) -> None:
        """Hand over the oldest rows not yet held; `publish` returns a message id or None."""
        room = self.window - len(self._rows)
        if room <= 0:
            return
        for row in self.outbox.pending(room, exclude=set(self._rows.values())):
            mid = publish(row)
            if mid is None:
                return
            self._rows[mid] = row.id

    def acked(self, mid: int) -> bool:
        """The broker acknowledged message `mid`: delete its row. False if it was no row."""
        row_id = self._rows.pop(mid, None)
        if row_id is None:
            return False
        self.outbox.remove(row_id)
        return True
