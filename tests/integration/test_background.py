"""Desired states reach the broker (retained), once per version, from one process at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jsonschema
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from support.fleet import Fleet
from support.mosquitto import Mosquitto

from lainaamo.protocol import DesiredState, Kind, Topics, parse
from lainaamo.protocol.messages import load_schema
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.entrypoints.background import Background
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
