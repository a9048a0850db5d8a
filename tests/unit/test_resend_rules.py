"""The rules for sending again what the broker may have lost: the commands' backoff, and the
agent's side, where a redelivered support signal must change nothing.

The server's rules against real databases are in tests/integration/test_resend.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from agent.platform.base import ConsentAnswer, SupportMedia
from agent.support.manager import FINISHED_REMEMBERED, Phase, SupportManager
from lainaamo.protocol import SessionSignal
from server.service_layer.device_commands import RESEND_BASE_S, RESEND_CAP_S, resend_after_s

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_an_unacknowledged_command_waits_twice_as_long_after_each_send_up_to_an_hour() -> None:
    assert (RESEND_BASE_S, RESEND_CAP_S) == (120, 3600)
    assert [resend_after_s(sends) for sends in range(1, 8)] == [
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert resend_after_s(0) == 120  # (never sent: as after the first send)
    assert resend_after_s(10**6) == 3600


class Platform:
    """Answers every consent question with `answer`; records the questions."""

    def __init__(self, answer: ConsentAnswer | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer:
        self.asked.append(caller)
        if self.answer is None:
            await asyncio.Event().wait()  # no answer: the manager's timeout
        assert self.answer is not None
        return self.answer

    def show_indicator(self, caller: str, on_end: Any) -> None:
        pass

    def hide_indicator(self) -> None:
        pass

    def support_media(self) -> SupportMedia:
        raise AssertionError("no offer is answered in these tests")


def request(session_id: str, **fields: Any) -> SessionSignal:
    asks: dict[str, Any] = {
        "caller": "Maija",
        "purpose": "bank app",
        "mode": "view",
        "consent_timeout_s": 0.1,  # (the schema's minimum is 5; the manager trusts parse)
        "max_duration_s": 3600,
        "ice_servers": [],
    }
    return SessionSignal(
        device_id="tab-001",
        ts=NOW,
        boot=1,
        seq=0,
        session_id=session_id,
        type="request",
        **(asks | fields),
    )


def harness(answer: ConsentAnswer | None) -> tuple[SupportManager, Platform, list[dict[str, Any]]]:
    platform = Platform(answer)
    events: list[dict[str, Any]] = []
    return SupportManager(platform, events.append, wall=lambda: NOW), platform, events


def test_a_redelivered_request_of_a_declined_or_unanswered_session_is_not_asked_again() -> None:
    async def scenario() -> None:
        manager, platform, events = harness(ConsentAnswer(False))
        await manager.on_signal(request("declined-1"))
        platform.answer = None
        await manager.on_signal(request("unanswered"))
        assert [e["consent"] for e in events] == ["declined", "timeout"]
        for session_id in ("declined-1", "unanswered", "declined-1"):
            await manager.on_signal(request(session_id))  # the server sent them again
        assert platform.asked == ["Maija", "Maija"] and len(events) == 2
        assert manager.session is None and manager.finished("declined-1")

    asyncio.run(scenario())


def test_a_redelivered_request_of_an_ended_session_is_not_asked_again() -> None:
    async def scenario() -> None:
        manager, platform, events = harness(ConsentAnswer(True))
        await manager.on_signal(request("ended-1"))
        session = manager.session
        assert session is not None and session.phase is Phase.ACCEPTED
        await manager.on_signal(request("ended-1"))  # while it is on: nothing (as before)
        await manager.on_signal(
            SessionSignal(
                device_id="tab-001",
                ts=NOW,
                boot=1,
                seq=1,
                session_id="ended-1",
                type="hangup",
                reason="hangup_counsellor",
            )
        )
        assert manager.session is None and session.phase is Phase.ENDED
        await manager.on_signal(request("ended-1"))  # after it ended: nothing either
        assert platform.asked == ["Maija"] and manager.session is None
        assert [e["type"] for e in events] == ["consent"]

    asyncio.run(scenario())


def test_a_redelivered_request_answered_busy_is_not_answered_or_asked_again() -> None:
    async def scenario() -> None:
        manager, platform, events = harness(ConsentAnswer(True))
        await manager.on_signal(request("first"))
        await manager.on_signal(request("second"))
        assert events[-1] == {
            "session_id": "second",
            "type": "consent",
            "consent": "busy",
            "control": False,
        }
        first = manager.session
        assert first is not None
        await manager.end(first, "hangup_client")
        await manager.on_signal(request("second"))  # redelivered once the tablet is free
        assert platform.asked == ["Maija"] and manager.session is None
        assert [e.get("consent") or e.get("reason") for e in events] == [
            "accepted",
            "busy",
            "hangup_client",
        ]

    asyncio.run(scenario())


def test_a_new_request_is_asked_and_the_record_of_finished_sessions_is_bounded() -> None:
    async def scenario() -> None:
        manager, platform, _events = harness(ConsentAnswer(False))
        for n in range(FINISHED_REMEMBERED + 1):
            await manager.on_signal(request(f"session-{n}"))
        assert len(platform.asked) == FINISHED_REMEMBERED + 1
        assert not manager.finished("session-0") and manager.finished("session-1")
        assert len(manager._finished) == FINISHED_REMEMBERED
        await manager.on_signal(request(f"session-{FINISHED_REMEMBERED}"))  # remembered
        assert len(platform.asked) == FINISHED_REMEMBERED + 1
        # A request with a finished session's id that asks something else is no repeat.
        await manager.on_signal(request("session-1", mode="control"))
        assert len(platform.asked) == FINISHED_REMEMBERED + 2

    asyncio.run(scenario())


def test_an_offer_outside_its_phase_is_ignored() -> None:
    async def scenario() -> None:
        manager, _platform, events = harness(ConsentAnswer(True))
        offer = SessionSignal(
            device_id="tab-001", ts=NOW, boot=1, seq=2, session_id="s-1", type="offer", sdp="v=0"
        )
        await manager.on_signal(offer)  # before the request: no session
        await manager.on_signal(request("s-1"))
        session = manager.session
        assert session is not None
        session.phase = Phase.CONNECTING  # answered already: a repeat offer changes nothing
        await manager.on_signal(offer)
        assert manager.session is session and session.pc is None
        await manager.end(session, "hangup_client")
        await manager.on_signal(offer)  # after the end: nothing either
        assert [e["type"] for e in events] == ["consent", "ended"]

    asyncio.run(scenario())
