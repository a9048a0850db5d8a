"""Desired states reach the broker (retained), once per version, from one process at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jsonschema
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from support.fleet import Fleet
from support.mosquitto import Mosquitto

from lainaamo.protocol import DesiredState, Kind, Topics, parse
from lainaamo.protocol.messages import load_schema
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.entrypoints.background import Background, Sweep
from server.service_layer import loans
from server.service_layer.accounts import principal_of

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


class Retained:
    """Collects the desired states a device would see (subscribing after the fact)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.latest: dict[str, DesiredState] = {}
        self.count = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="observer")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(Topics().wildcard(Kind.DESIRED), qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        device_id, _ = Topics().parse(message.topic)
        parsed = parse(Kind.DESIRED, device_id, message.payload)
        assert isinstance(parsed, DesiredState)
        self.latest[device_id] = parsed
        self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def principal(fleet: Fleet, role: str) -> object:
    from sqlalchemy import select

    from server.adapters.orm import User

    with fleet.services.session_factory() as session:
        user = session.scalar(select(User).where(User.username == fleet.logins[role].username))
        assert user is not None
        return principal_of(user)


def test_desired_states_follow_the_loan_and_reach_the_broker(
    fleet: Fleet, mosquitto: Mosquitto
) -> None:
    now = [T0]
    settings = fleet.services.settings.replace(mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    worker = Background(settings, fleet.services.session_factory, lambda: now[0], tick_s=0.05)
    worker.start()
    observer = Retained(mosquitto)
    try:
        wait_until(lambda: len(observer.latest) == 9)
        first = observer.latest["tab-001"]
        assert first.version == 1 and first.policy["mode"] == "locked"
        assert "tab-001" not in str(first.policy) and "aikuis" not in str(first.policy).lower()
        schema = load_schema(Kind.DESIRED)["properties"]["policy"]
        jsonschema.validate(first.policy, schema)

        admin, it, counsellor = (principal(fleet, r) for r in ("admin", "it_support", "counsellor"))
        loans.add_agreement(fleet.services.uow(), admin, "1", "ehdot")  # type: ignore[arg-type]
        loan = loans.request_loan(
            fleet.services.uow(),
            counsellor,  # type: ignore[arg-type]
            RequestLoan("aikuissosiaalityo", "ASK-1"),
            T0,
        )
        loans.act(
            fleet.services.uow(), it, LoanStep(loan, LoanAction.ASSIGN, device_id="tab-001"), T0
        )  # type: ignore[arg-type]
        loans.act(
            fleet.services.uow(),
            counsellor,
            LoanStep(  # type: ignore[arg-type]
                loan, LoanAction.HAND_OVER, agreement_version="1", agreement_accepted=True
            ),
            T0,
        )
        wait_until(lambda: observer.latest["tab-001"].version == 2)
        kiosk = observer.latest["tab-001"].policy
        assert kiosk["mode"] == "kiosk" and kiosk["reminder"] is False
        # due 90 days after the handover, self-lock 21 days later if the tablet stays unheard of
        assert kiosk["offline_lock_at"] == "2027-02-21T09:00:00Z"
        jsonschema.validate(kiosk, schema)

        now[0] = T0 + timedelta(days=95)  # overdue past the reminder
        assert worker.escalate(now[0]) == ["tab-001"]
        wait_until(lambda: observer.latest["tab-001"].version == 3)
        assert observer.latest["tab-001"].policy["reminder"] is True
        now[0] = T0 + timedelta(days=120)
        worker.escalate(now[0])
        wait_until(lambda: observer.latest["tab-001"].policy["mode"] == "restricted")
        assert worker.escalate(now[0]) == []  # nothing new: no new version
        published = observer.count
        time.sleep(0.3)
        assert observer.count == published, "a version is published once"
    finally:
        observer.close()
        worker.stop()


def test_only_one_process_works_and_another_takes_over(fleet: Fleet, mosquitto: Mosquitto) -> None:
    settings = fleet.services.settings.replace(mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    first = Background(
        settings, fleet.services.session_factory, lambda: datetime.now(UTC), tick_s=0.05
    )
    second = Background(
        settings, fleet.services.session_factory, lambda: datetime.now(UTC), tick_s=0.05
    )
    first.start()
    wait_until(lambda: first.leader)
    second.start()
    try:
        time.sleep(0.5)
        assert first.leader and not second.leader
        first.stop()
        wait_until(lambda: second.leader, timeout=5)
    finally:
        second.stop()


def test_nothing_is_marked_published_while_the_broker_is_away(
    fleet: Fleet, mosquitto: Mosquitto
) -> None:
    settings = fleet.services.settings.replace(
        mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, reconnect_max_s=1
    )
    mosquitto.stop()
    worker = Background(
        settings, fleet.services.session_factory, lambda: datetime.now(UTC), tick_s=0.05
    )
    worker.start()
    try:
        wait_until(lambda: worker.leader)
        time.sleep(0.5)
        from sqlalchemy import func, select

        from server.adapters.orm import DesiredStateRow

        def unpublished() -> int:
            with fleet.services.session_factory() as session:
                return (
                    session.scalar(
                        select(func.count()).where(
                            DesiredStateRow.published_version < DesiredStateRow.version
                        )
                    )
                    or 0
                )

        assert unpublished() == 9
        mosquitto.start()
        wait_until(lambda: unpublished() == 0, timeout=20)
        observer = Retained(mosquitto)
        wait_until(lambda: len(observer.latest) == 9)
        observer.close()
    finally:
        worker.stop()


def test_a_new_leader_recomputes_every_desired_state(fleet: Fleet, mosquitto: Mosquitto) -> None:
    """A policy computed by older code (here: one tablet's desired state edited behind the
    server's back, as an upgrade that adds a policy key leaves it) is recomputed, and published,
    when a scheduler takes the lease — in batches, over the whole fleet."""
    from server.adapters import orm

    with fleet.services.session_factory() as session:
        from server.service_layer.desired import refresh_desired

        ids = list(session.scalars(select(orm.Device.id)))
        refresh_desired(session, ids, T0)
        row = session.get(orm.DesiredStateRow, "tab-009")
        assert row is not None
        row.policy = {"mode": "kiosk", "from": "old code"}
        row.version += 1
        old_version = row.version
        session.commit()
    settings = fleet.services.settings.replace(mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    retained = Retained(mosquitto)
    worker = Background(settings, fleet.services.session_factory, lambda: T0, tick_s=0.05)
    worker.start()
    try:
        wait_until(lambda: worker.leader and worker._sweep is None)
        with fleet.services.session_factory() as session:
            row = session.get(orm.DesiredStateRow, "tab-009")
            assert row is not None and row.version == old_version + 1
            assert row.policy["mode"] == "locked" and "from" not in row.policy
            untouched = session.get(orm.DesiredStateRow, "tab-001")
            assert untouched is not None and untouched.version == 1
        wait_until(lambda: "tab-009" in retained.latest)
        assert retained.latest["tab-009"].version == old_version + 1
    finally:
        worker.stop()
        retained.close()


def test_a_broker_that_lost_its_retained_states_gets_them_back(
    fleet: Fleet, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker restarted without its store (no persistence, or a lost volume) holds no
    retained desired states: tablets that reconnect would get none. The scheduler sends them
    all again whenever it (re)connects; having recomputed them once as leader, it only
    publishes them again."""
    import logging
    from pathlib import Path

    caplog.set_level(logging.INFO, logger="server.entrypoints.background")

    broker = Mosquitto(Path(str(tmp_path)) / "bare", persistence=False)
    broker.start()
    settings = fleet.services.settings.replace(
        mqtt_host=broker.host, mqtt_port=broker.port, reconnect_max_s=1.0
    )
    worker = Background(settings, fleet.services.session_factory, lambda: T0, tick_s=0.05)
    worker.start()
    try:
        wait_until(lambda: worker.leader and worker._sweep is None)
        broker.stop()
        broker.start()  # empty: no sessions, no retained messages
        retained = Retained(broker)
        try:
            wait_until(lambda: len(retained.latest) == 9, timeout=20)
            assert {d.version for d in retained.latest.values()} == {1}
            wait_until(lambda: "published again (9 devices" in caplog.text)
            assert caplog.text.count("recomputed and published (9 devices") == 1
        finally:
            retained.close()
    finally:
        worker.stop()
        broker.stop()


def test_versions_jump_past_what_tablets_applied_after_a_restore(fleet: Fleet) -> None:
    from server.adapters import orm
    from server.service_layer.desired import catch_up_versions, refresh_desired

    with fleet.services.session_factory() as session:
        refresh_desired(session, ["tab-001", "tab-002"], T0)
        # tab-001 applied version 7 before the database was restored to a day-old backup.
        session.merge(orm.DeviceStatus(device_id="tab-001", desired_version=7))
        session.merge(orm.DeviceStatus(device_id="tab-002", desired_version=1))
        session.commit()
        assert catch_up_versions(session, T0) == ["tab-001"]
        session.commit()
        ahead = session.get(orm.DesiredStateRow, "tab-001")
        same = session.get(orm.DesiredStateRow, "tab-002")
        assert ahead is not None and same is not None
        assert (ahead.version, same.version) == (8, 1)
        assert ahead.published_version < ahead.version, "the scheduler publishes it next"
        assert catch_up_versions(session, T0) == []


def test_a_sweep_slice_gives_way_once_work_is_committed(fleet: Fleet) -> None:
    """The fleet sweep runs in slices between rounds; a command or signal committed during a
    slice (the waiter is woken) ends it after the current batch, so it waits one batch, not a
    whole slice."""
    from server.adapters.wakeup import PollOnly

    waiter = PollOnly()
    worker = Background(
        fleet.services.settings, fleet.services.session_factory, lambda: T0, waiter=waiter
    )
    steps: list[str] = []

    def step(_now: datetime) -> bool:
        assert worker._sweep is not None
        steps.append(worker._sweep.after)
        worker._sweep.after = f"tab-{len(steps):03d}"
        if len(steps) == 3:
            waiter.wake()  # a command was committed during the third batch
        return True

    worker._reconcile_step = step  # type: ignore[method-assign]
    worker._client.is_connected = lambda: True  # type: ignore[method-assign]
    worker._sweep = Sweep(recompute=True)
    worker.reconcile(T0)
    assert steps == ["", "tab-001", "tab-002"]
    worker.reconcile(T0)  # the round that serves the command comes first
    assert len(steps) == 3
    assert waiter.wait(0)  # that round's wait returns at once (and clears the wake-up)
    worker.reconcile(T0)
    assert len(steps) > 3  # the sweep goes on


def test_a_sweep_batch_stops_after_the_device_at_hand_when_work_waits(fleet: Fleet) -> None:
    from server.service_layer.desired import reconcile_batch

    with fleet.services.session_factory() as session:
        assert reconcile_batch(session, "", T0, 5) == [f"tab-00{i}" for i in range(1, 6)]
        assert reconcile_batch(session, "tab-005", T0, 5, give_way=lambda: True) == ["tab-006"]
        assert reconcile_batch(session, "tab-009", T0, 5) == []


def test_a_sweep_batch_reads_what_its_devices_depend_on_together(fleet: Fleet) -> None:
    """The sweep's reads do not grow with its batch: devices, desired states and loans in one
    query each, rules and kiosk profile once per unit (it used to be five queries a device)."""
    from sqlalchemy import event

    from server.service_layer.desired import reconcile_batch

    def statements(batch: int) -> int:
        with fleet.services.session_factory() as session:
            engine = session.get_bind()
            count = 0

            def counted(*_args: object) -> None:
                nonlocal count
                count += 1

            event.listen(engine, "before_cursor_execute", counted)
            try:
                assert len(reconcile_batch(session, "", T0, batch)) == batch
            finally:
                event.remove(engine, "before_cursor_execute", counted)
            session.commit()
        return count

    statements(9)  # the first sweep writes every desired state; the next ones only read
    one, nine = statements(1), statements(9)
    print(f"statements: one device {one}, nine devices in three units {nine}")
    assert nine < 3 * one


def test_reads_made_for_other_devices_are_not_used(fleet: Fleet) -> None:
    from sqlalchemy import delete

    from server.adapters import orm
    from server.service_layer.desired import Reads, refresh_desired

    with fleet.services.session_factory() as session:
        session.execute(
            delete(orm.DesiredStateRow).where(
                orm.DesiredStateRow.device_id.in_(["tab-002", "tab-003"])
            )
        )
        elsewhere = Reads(session, ["tab-001"])
        # Both get a desired state again, not skipped for want of a device row in the reads.
        assert refresh_desired(session, ["tab-002", "tab-003"], T0, elsewhere) == [
            "tab-002",
            "tab-003",
        ]
