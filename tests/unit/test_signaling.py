"""The remote-support session lifecycle, and the ICE servers with coturn REST credentials."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lainaamo.config import Settings
from signaling import (
    FINAL,
    EndReason,
    IllegalTransition,
    SessionState,
    check_transition,
    end_reason_of_device,
    ice_servers,
    turn_credentials,
)
from signaling.state import TRANSITIONS

S = SessionState
LEGAL = {
    (S.REQUESTED, S.WAITING_CONSENT),
    (S.REQUESTED, S.ENDED),
    (S.WAITING_CONSENT, S.ACCEPTED),
    (S.WAITING_CONSENT, S.DECLINED),
    (S.WAITING_CONSENT, S.CONSENT_TIMEOUT),
    (S.WAITING_CONSENT, S.ENDED),
    (S.ACCEPTED, S.CONNECTING),
    (S.ACCEPTED, S.ENDED),
    (S.CONNECTING, S.ACTIVE),
    (S.CONNECTING, S.ENDED),
    (S.ACTIVE, S.ENDED),
}
NOW = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # 1700000000


@pytest.mark.parametrize("current", list(SessionState))
@pytest.mark.parametrize("target", list(SessionState))
def test_every_transition_is_legal_or_refused_clearly(
    current: SessionState, target: SessionState
) -> None:
    if (current, target) in LEGAL:
        assert check_transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition, match=f"cannot go from {current} to {target}"):
            check_transition(current.value, target.value)


def test_final_states_never_change() -> None:
    assert FINAL == {S.DECLINED, S.CONSENT_TIMEOUT, S.ENDED}
    assert all(not TRANSITIONS[s] for s in FINAL)


def test_device_end_reasons_map_to_end_reasons() -> None:
    assert end_reason_of_device("hangup_client") is EndReason.HANGUP_CLIENT
    assert end_reason_of_device("hangup_peer") is EndReason.HANGUP_COUNSELLOR
    assert end_reason_of_device("heartbeat_lost") is EndReason.HEARTBEAT_LOST
    assert end_reason_of_device("agent_stopped") is EndReason.DEVICE_OFFLINE
    assert end_reason_of_device("nonsense") is EndReason.ERROR
    assert end_reason_of_device(None) is EndReason.ERROR


def test_turn_credentials_match_a_known_hmac_vector() -> None:
    # printf '1700003600:sess-abcdefghijklmnop' | openssl dgst -sha1 -hmac north-secret -binary
    # | base64
    username, credential = turn_credentials("north-secret", "sess-abcdefghijklmnop", 1700003600)
    assert username == "1700003600:sess-abcdefghijklmnop"
    assert credential == "C7ap7EkuX4zivkO2lT3+1t4zofI="


def test_no_ice_servers_by_default_never_a_public_stun() -> None:
    assert ice_servers(Settings.load({}), "sess-abcdefghijklmnop", NOW) == []


def test_ice_servers_from_settings() -> None:
    settings = Settings.load({}).replace(
        support_stun_urls="stun:turn.example.fi:3478",
        turn_urls="turn:turn.example.fi:3478?transport=udp, turns:turn.example.fi:5349",
        turn_secret="north-secret",
        turn_credential_ttl_s=3600,
    )
    servers = ice_servers(settings, "sess-abcdefghijklmnop", NOW)
    assert servers == [
        {"urls": ["stun:turn.example.fi:3478"]},
        {
            "urls": ["turn:turn.example.fi:3478?transport=udp", "turns:turn.example.fi:5349"],
            "username": "1700003600:sess-abcdefghijklmnop",
            "credential": "C7ap7EkuX4zivkO2lT3+1t4zofI=",
        },
    ]


def test_turn_urls_without_a_secret_give_no_turn_server() -> None:
    settings = Settings.load({}).replace(turn_urls="turn:turn.example.fi:3478")
    assert ice_servers(settings, "sess-abcdefghijklmnop", NOW) == []
