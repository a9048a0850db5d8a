"""The rule of server/domain/policy_state.py as SQL, for queries over the whole fleet.

A device is converged when its latest status reports a desired version at least the current
one and every key of it enforced (`device_status.all_enforced`, true only when the report
named no key unsupported or failed); it is in drift when it has a desired state and is not
converged. Both expressions are never NULL, so they can be negated and counted: a device
without a status row (an outer join) or without a desired state gives plain false.
tests/integration/test_policy_state_sql.py checks them against the domain rule.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, not_

from server.adapters import orm


def _applied_and_enforced() -> ColumnElement[bool]:
    """Applied the current version, every key reported enforced (NULL without a version)."""
    status, desired = orm.DeviceStatus, orm.DesiredStateRow
    applied = func.coalesce(status.desired_version, 0) >= desired.version
    return and_(applied, status.all_enforced.is_(True))


def converged() -> ColumnElement[bool]:
    """device_status and device_desired: the device has applied its current desired state and
    reports every key of it enforced."""
    return and_(orm.DesiredStateRow.version.is_not(None), _applied_and_enforced())


def in_drift() -> ColumnElement[bool]:
    """device_status and device_desired: the device has a desired state and is not converged
    with it (pending, not enforced, or not reporting what it enforces)."""
    return and_(orm.DesiredStateRow.version.is_not(None), not_(_applied_and_enforced()))
