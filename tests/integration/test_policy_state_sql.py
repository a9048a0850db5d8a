"""The policy-state rule as SQL (adapters/policy_sql.py) says what the domain rule says
(domain/policy_state.py), for every combination of desired and reported state, on SQLite and
PostgreSQL: the fleet list's filter, the drift list and the drift gauge agree with the pages."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select
from support.fleet import Fleet, make_fleet, report_applied

from lainaamo.protocol import EnforcementReport
from server.adapters import orm, policy_sql
from server.domain.policy_state import PolicyState, in_drift
from server.service_layer.desired import state_of

VERSIONS = (None, 3)  # the device has no desired state, or version 3
REPORTED = (None, 0, 2, 3, 4)  # never reported, nothing applied, older, current, ahead
ENFORCEMENTS = (None, EnforcementReport(), EnforcementReport(("kiosk",), {"message": "no"}))
CASES = list(itertools.product(VERSIONS, REPORTED, ENFORCEMENTS))


@pytest.fixture
def many(migrated_db_url: str) -> Iterator[Fleet]:
    fleet = make_fleet(migrated_db_url, devices=len(CASES))
    yield fleet
    fleet.services.close()


def test_sql_and_domain_agree_on_every_combination(many: Fleet) -> None:
    with many.services.session_factory() as session:
        ids = sorted(session.scalars(select(orm.Device.id)))
        assert len(ids) == len(CASES)
        for device_id, (version, reported, enforcement) in zip(ids, CASES, strict=True):
            if version is None:
                session.execute(
                    delete(orm.DesiredStateRow).where(orm.DesiredStateRow.device_id == device_id)
                )
            else:
                desired = session.get(orm.DesiredStateRow, device_id)
                assert desired is not None
                desired.version = version
            status = session.get(orm.DeviceStatus, device_id)
            assert status is not None
            if reported is None:
                status.desired_version = None
            else:
                report_applied(status, reported, enforcement)
        session.commit()
    with many.services.session_factory() as session:
        rows = session.execute(
            select(orm.Device.id, policy_sql.in_drift(), policy_sql.converged())
            .outerjoin(orm.DeviceStatus, orm.DeviceStatus.device_id == orm.Device.id)
            .outerjoin(orm.DesiredStateRow, orm.DesiredStateRow.device_id == orm.Device.id)
            .order_by(orm.Device.id)
        ).all()
        devices = {d.id: d for d in session.scalars(select(orm.Device))}
        seen: set[PolicyState | None] = set()
        for (device_id, drifting, converged), case in zip(rows, CASES, strict=True):
            device = devices[device_id]
            state = state_of(device.desired, device.status)
            seen.add(state)
            assert bool(drifting) == in_drift(state), (case, state)
            assert bool(converged) == (state is PolicyState.CONVERGED), (case, state)
            assert drifting is not None and converged is not None  # never NULL
    assert seen == {None, *PolicyState}
