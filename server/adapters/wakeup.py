"""Wake-ups for the scheduler: work committed by another process is sent now, not at the next poll.

The process that queues work for the scheduler (a command from the API) calls
`announce(session)` inside the transaction that queues it. On PostgreSQL that is `pg_notify`,
which the server delivers to listeners when, and only if, the transaction commits; elsewhere it
does nothing. The scheduler waits between its rounds on a `Waiter`:

- `PgListener` LISTENs on a connection of its own (in a thread) and wakes the scheduler on every
  notification, and once after each (re)connect, since notifications sent while it was not
  listening are lost;
- `PollOnly` (SQLite, tests) only waits.

Either returns after the poll interval at the latest: polling stays the fallback, so a lost
notification, or a listener that cannot connect, costs one poll interval and nothing else.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "lainaamo_scheduler"
RETRY_S = 5.0  # between attempts to (re)connect the listener
LISTEN_ROUND_S = 0.5  # how quickly a closed listener notices


def announce(session: Session, channel: str = CHANNEL) -> None:
    """Tell the scheduler, once this transaction commits, that there is work to send."""
    if session.get_bind().dialect.name == "postgresql":
        # Repeats in one transaction are folded into one notification by PostgreSQL.
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


class Waiter(Protocol):
    """What the scheduler waits on between rounds."""

    def start(self) -> None: ...

    def wait(self, timeout: float) -> bool:
        """Return when woken (True) or after `timeout` seconds (False)."""
        ...

    def wake(self) -> None:
        """Make the current or next `wait` return now (from any thread)."""
        ...

    def woken(self) -> bool:
        """Whether the next `wait` would return at once: work was committed meanwhile."""
        ...

    def close(self) -> None: ...


class PollOnly:
    """Waits the whole poll interval unless woken from this process."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def start(self) -> None:
        pass

    def wait(self, timeout: float) -> bool:
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken

    def wake(self) -> None:
        self._event.set()

    def woken(self) -> bool:
        return self._event.is_set()

    def close(self) -> None:
        self._event.set()


class PgListener(PollOnly):
    """Wakes on PostgreSQL notifications on `channel`, LISTENed to in a thread of its own."""

    def __init__(self, database_url: str, channel: str = CHANNEL, retry_s: float = RETRY_S) -> None:
        super().__init__()
        # SQLAlchemy's `postgresql+psycopg://` URL as libpq understands it.
        self._conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        self._channel = channel
        self._retry_s = retry_s
        self._closed = threading.Event()
        self.listening = threading.Event()  # set while a LISTEN is in place (for tests)
        self._thread = threading.Thread(target=self._run, name="wakeup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        super().close()
        if self._thread.is_alive():
            self._thread.join(LISTEN_ROUND_S * 4)

    def _run(self) -> None:
        import psycopg
        from psycopg import sql

        while not self._closed.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.listening.set()
                    self.wake()  # what was announced while nobody listened
                    while not self._closed.is_set():
                        # psycopg keeps what arrives between rounds for the next one.
                        for _ in conn.notifies(timeout=LISTEN_ROUND_S):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("scheduler wake-ups paused (polling only): %s", exc)
            finally:
                self.listening.clear()
            self._closed.wait(self._retry_s)


def for_database(database_url: str) -> Waiter:
    """A listener on PostgreSQL, plain polling elsewhere."""
    if make_url(database_url).get_backend_name() == "postgresql":
        return PgListener(database_url)
    return PollOnly()
