"""Rules of the domain: message ordering, presence, staleness, lifecycle moves, commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lainaamo.errors import Conflict, InvalidInput
from server.domain.commands import AddUser, CreateDevice, UpdateDevice
from server.domain.model import (
    LifecycleState,
    Principal,
    Role,
    apply_presence,
    check_manual_transition,
    is_newer,
    is_stale,
)


def test_positions_order_by_boot_then_seq() -> None:
    assert is_newer((1, 5), None)
    assert is_newer((1, 6), (1, 5))
    assert is_newer((2, 0), (1, 999))
    assert not is_newer((1, 5), (1, 5))
    assert not is_newer((1, 999), (2, 0))


class TestPresence:
    def test_birth_brings_a_device_online(self) -> None:
        change = apply_presence(False, None, "online", (1, 1))
        assert change is not None and change.online and change.changed

    def test_a_late_will_from_an_older_connection_is_ignored(self) -> None:
        # connection 1: birth 0, will 1; connection 2: birth 6, will 7
        assert apply_presence(True, (1, 6), "offline", (1, 1)) is None

    def test_a_will_of_the_current_connection_takes_the_device_offline(self) -> None:
        change = apply_presence(True, (1, 6), "offline", (1, 7))
        assert change is not None and not change.online and change.changed

    def test_a_will_from_a_previous_boot_is_ignored(self) -> None:
        assert apply_presence(True, (2, 1), "offline", (1, 40)) is None

    def test_repeated_online_is_not_a_change(self) -> None:
        change = apply_presence(True, (1, 1), "online", (1, 3))
        assert change is not None and change.online and not change.changed


def test_stale_means_online_but_silent_for_several_intervals() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_stale(True, now - timedelta(seconds=181), 60, now, 3.0)
    assert not is_stale(True, now - timedelta(seconds=179), 60, now, 3.0)
    assert not is_stale(False, now - timedelta(days=9), 60, now, 3.0)
    assert not is_stale(True, None, 60, now, 3.0)


class TestLifecycle:
    def test_loans_are_not_made_by_hand(self) -> None:
        with pytest.raises(Conflict, match="in_stock to on_loan"):
            check_manual_transition(LifecycleState.IN_STOCK, LifecycleState.ON_LOAN)

    def test_a_returned_device_cannot_skip_the_wipe(self) -> None:
        with pytest.raises(Conflict):
            check_manual_transition(LifecycleState.AWAITING_WIPE, LifecycleState.IN_STOCK)

    @pytest.mark.parametrize("final", [LifecycleState.RETIRED, LifecycleState.RELEASED])
    def test_final_states_are_final(self, final: LifecycleState) -> None:
        for target in LifecycleState:
            if target != final:
                with pytest.raises(Conflict):
                    check_manual_transition(final, target)

    def test_repair_goes_back_through_the_wipe(self) -> None:
        check_manual_transition(LifecycleState.IN_STOCK, LifecycleState.IN_REPAIR)
        check_manual_transition(LifecycleState.IN_REPAIR, LifecycleState.AWAITING_WIPE)
        with pytest.raises(Conflict):
            check_manual_transition(LifecycleState.IN_REPAIR, LifecycleState.IN_STOCK)


class TestCommands:
    def test_create_device_trims_and_checks(self) -> None:
        cmd = CreateDevice(device_id="tab-001", asset_tag="  ES-1 ", model=" Tab A9 ")
        assert (cmd.asset_tag, cmd.model) == ("ES-1", "Tab A9")

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"device_id": "a/b", "asset_tag": "x"}, "device_id"),
            ({"device_id": "tab-001", "asset_tag": ""}, "asset_tag"),
            ({"device_id": "tab-001", "asset_tag": "x" * 65}, "asset_tag"),
            ({"device_id": "tab-001", "asset_tag": "a\nb"}, "asset_tag"),
            (
                {"device_id": "tab-001", "asset_tag": "x", "lifecycle_state": "on_loan"},
                "lifecycle_state",
            ),
            (
                {"device_id": "tab-001", "asset_tag": "x", "lifecycle_state": "bogus"},
                "lifecycle_state",
            ),
        ],
    )
    def test_create_device_names_the_bad_field(self, fields: dict[str, str], field: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            CreateDevice(**fields)
        assert caught.value.errors[0]["field"] == field

    def test_update_refuses_unknown_and_mistyped_fields(self) -> None:
        with pytest.raises(InvalidInput, match="unknown"):
            UpdateDevice("tab-001", {"owner": "x"})
        with pytest.raises(InvalidInput, match="string"):
            UpdateDevice("tab-001", {"model": 5})
        with pytest.raises(InvalidInput, match="nothing"):
            UpdateDevice("tab-001", {})

    def test_counsellors_need_a_unit(self) -> None:
        with pytest.raises(InvalidInput, match="unit"):
            AddUser("org", "c@x", "counsellor")
        AddUser("org", "c@x", "counsellor", ("unit-a",))

    def test_short_passwords_are_refused(self) -> None:
        with pytest.raises(InvalidInput, match="password"):
            AddUser("org", "a@x", "admin", password="short")


def test_counsellors_see_only_their_units() -> None:
    counsellor = Principal(1, "c", 1, Role.COUNSELLOR, frozenset({7}))
    admin = Principal(2, "a", 1, Role.ADMIN, frozenset())
    assert (
        counsellor.sees_unit(7) and not counsellor.sees_unit(8) and not counsellor.sees_unit(None)
    )
    assert admin.sees_unit(8) and admin.sees_unit(None)
    assert not counsellor.manages_devices and admin.manages_devices
