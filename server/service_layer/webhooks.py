"""Outgoing webhooks: subscriptions, the fan-out of events into deliveries, signed retries.

Subscriptions belong to an organisation and are managed by administrators and IT support.
The scheduler's deliver_webhooks job (its process holds the `background` lease, so one at a
time) turns new audit events into queued deliveries past a cursor kept in the database
(`fan_out`), then posts due deliveries (`deliver_due`): 2xx is delivered, anything else is
retried with growing delays and finally given up. Delivery is at least once: receivers
deduplicate by `Lainaamo-Event-Id`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from lainaamo.errors import Forbidden, InvalidInput, NotFound
from server.adapters import orm
from server.adapters.webhook_sender import Outcome, Sender
from server.domain.model import Principal
from server.service_layer import audit, events
from server.service_layer.unit_of_work import UnitOfWork

CURSOR = "webhooks"
# Delay before attempt 2, 3, …; after the last one fails the delivery is given up.
BACKOFF_S = (10, 60, 300, 1800, 3600, 3 * 3600, 6 * 3600)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
FAN_OUT_BATCH = 500
DELIVERY_BATCH = 16
MAX_SUBSCRIPTIONS = 20  # per organisation
LOOPBACK_NAMES = {"localhost"}


def require_manager(principal: Principal) -> None:
    if not principal.manages_devices:
        raise Forbidden("only administrators and IT support manage webhooks")


def check_url(url: str) -> str:
    """https:// anywhere; plain http:// only to a loopback address (tests, a local relay)."""

    def bad(message: str) -> InvalidInput:
        return InvalidInput("invalid url", [{"field": "url", "message": message}])

    if not isinstance(url, str) or len(url) > 500:
        raise bad("an absolute https:// URL of at most 500 characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # "https://[::1" and the like
        raise bad("an absolute https:// URL") from None
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        raise bad("an absolute https:// URL without credentials")
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host in LOOPBACK_NAMES
        if not loopback:
            raise bad("https:// is required (http:// only to a loopback address)")
    return url


def check_types(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("invalid event_types", [{"field": "event_types", "message": "list"}])
    unknown = sorted(set(value) - events.EVENT_TYPES)
    if unknown:
        raise InvalidInput(
            "unknown event types",
            [{"field": "event_types", "message": f"unknown: {', '.join(unknown)}"}],
        )
    return sorted(set(value))


def subscription_json(row: orm.WebhookSubscription) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "event_types": row.event_types,
        "active": row.active,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


def create(
    uow: UnitOfWork, principal: Principal, url: str, event_types: Any, now: datetime
) -> dict[str, Any]:
    """A new subscription; the answer holds its signing secret, which is never shown again."""
    require_manager(principal)
    url, types = check_url(url), check_types(event_types)
    with uow:
        session = uow.session
        count = len(_subscriptions(uow, principal))
        if count >= MAX_SUBSCRIPTIONS:
            raise InvalidInput(f"at most {MAX_SUBSCRIPTIONS} webhooks per organisation", [])
        row = orm.WebhookSubscription(
            organisation_id=principal.organisation_id,
            url=url,
            event_types=types,
            secret=secrets.token_hex(32),
            active=True,
            created_by=principal.user_id,
            created_at=now,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            principal=principal,
            action="api:webhook:create",
            subject_type="webhook",
            subject_id=str(row.id),
            organisation_id=principal.organisation_id,
            after={"url": url, "event_types": types},
            system_part="api",
        )
        uow.commit()
        return subscription_json(row) | {"secret": row.secret}


def _subscriptions(uow: UnitOfWork, principal: Principal) -> Sequence[orm.WebhookSubscription]:
    return uow.session.scalars(
        select(orm.WebhookSubscription)
        .where(
            orm.WebhookSubscription.organisation_id == principal.organisation_id,
            orm.WebhookSubscription.deleted_at.is_(None),
        )
        .order_by(orm.WebhookSubscription.id)
    ).all()


def _subscription(uow: UnitOfWork, principal: Principal, sub_id: int) -> orm.WebhookSubscription:
    """The organisation's subscription (deleted ones too), or NotFound."""
    row = uow.session.get(orm.WebhookSubscription, sub_id) if 0 < sub_id < 2**31 else None
    if row is None or row.organisation_id != principal.organisation_id:
        raise NotFound(f"no webhook {sub_id}")
    return row


def list_subscriptions(uow: UnitOfWork, principal: Principal) -> list[dict[str, Any]]:
    require_manager(principal)
    with uow:
        return [subscription_json(r) for r in _subscriptions(uow, principal)]


def delete(uow: UnitOfWork, principal: Principal, sub_id: int, now: datetime) -> None:
    """Stop a subscription; its pending deliveries are given up, its history stays visible.

    Deleting a deleted subscription again changes nothing (DELETE is idempotent)."""
    require_manager(principal)
    with uow:
        row = _subscription(uow, principal, sub_id)
        if row.deleted_at is not None:
            return
        row.active, row.deleted_at = False, now
        for delivery in uow.session.scalars(
            select(orm.WebhookDelivery).where(
                orm.WebhookDelivery.subscription_id == sub_id,
                orm.WebhookDelivery.state.in_(("queued", "failed")),
            )
        ):
            delivery.state, delivery.last_error = "gave_up", "the webhook was deleted"
        audit.record(
            uow.session,
            principal=principal,
            action="api:webhook:delete",
            subject_type="webhook",
            subject_id=str(sub_id),
            organisation_id=principal.organisation_id,
            system_part="api",
        )
        uow.commit()


def deliveries(
    uow: UnitOfWork, principal: Principal, sub_id: int, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest deliveries of a subscription (deleted ones included), newest first."""
    require_manager(principal)
    with uow:
        _subscription(uow, principal, sub_id)  # scope: 404 if not ours
        rows = uow.session.scalars(
            select(orm.WebhookDelivery)
            .where(orm.WebhookDelivery.subscription_id == sub_id)
            .order_by(orm.WebhookDelivery.id.desc())
            .limit(limit)
        ).all()
        return [delivery_json(d) for d in rows]


def delivery_json(row: orm.WebhookDelivery) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "event_id": row.event_id,
        "event_type": row.event_type,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.state in ("queued", "failed") else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.delivered_at),
    }


def fan_out(uow: UnitOfWork, now: datetime, batch: int = FAN_OUT_BATCH) -> int:
    """Queue a delivery per new event and matching subscription; returns how many."""
    with uow:
        session = uow.session
        cursor = session.get(orm.EventCursor, CURSOR, with_for_update=True)
        if cursor is None:  # the migration adds it; subscriptions filter old events anyway
            cursor = orm.EventCursor(name=CURSOR, last_seq=0)
            session.add(cursor)
        found, last = events.since(session, cursor.last_seq, batch)
        subs = session.scalars(
            select(orm.WebhookSubscription).where(orm.WebhookSubscription.active.is_(True))
        ).all()
        # A subscription gets the events after its own creation (an audit event too).
        since_seq = dict(
            session.execute(
                select(orm.AuditEvent.subject_id, orm.AuditEvent.seq).where(
                    orm.AuditEvent.action == "api:webhook:create",
                    orm.AuditEvent.subject_id.in_([str(s.id) for s in subs]),
                )
            ).all()
        )
        queued = 0
        for event in found:
            for sub in subs:
                if sub.organisation_id != event.organisation_id:
                    continue
                if event.id <= (since_seq.get(str(sub.id)) or 0):
                    continue
                if sub.event_types and event.type not in sub.event_types:
                    continue
                session.add(
                    orm.WebhookDelivery(
                        subscription_id=sub.id,
                        event_id=event.id,
                        event_type=event.type,
                        payload=event.payload,
                        state="queued",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
                queued += 1
        cursor.last_seq = last
        uow.commit()
        return queued


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Lainaamo-Signature` header: t=<unix seconds>,v1=<hex HMAC-SHA256>."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(frozen=True)
class _Due:
    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]


def _due(uow: UnitOfWork, now: datetime, limit: int) -> list[_Due]:
    with uow:
        rows = uow.session.execute(
            select(orm.WebhookDelivery, orm.WebhookSubscription)
            .join(orm.WebhookSubscription)
            .where(
                orm.WebhookDelivery.state.in_(("queued", "failed")),
                orm.WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(orm.WebhookDelivery.next_attempt_at, orm.WebhookDelivery.id)
            .limit(limit)
        ).all()
        due = []
        stamp = int(now.timestamp())
        for delivery, sub in rows:
            body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
            headers = {
                "Lainaamo-Event-Id": str(delivery.event_id),
                "Lainaamo-Event-Type": delivery.event_type,
                "Lainaamo-Timestamp": str(stamp),
                "Lainaamo-Signature": signature(sub.secret, stamp, body),
            }
            due.append(_Due(delivery.id, sub.url, body, headers))
        return due


def _record(uow: UnitOfWork, delivery_id: int, outcome: Outcome, now: datetime) -> str:
    with uow:
        row = uow.session.get(orm.WebhookDelivery, delivery_id)
        if row is None or row.state not in ("queued", "failed"):
            return "skipped"  # deleted meanwhile
        row.attempts += 1
        row.last_status, row.last_error = outcome.status, outcome.error
        if outcome.ok:
            row.state, row.delivered_at = "delivered", now
        elif row.attempts >= MAX_ATTEMPTS:
            row.state = "gave_up"
        else:
            row.state = "failed"
            row.next_attempt_at = now + timedelta(seconds=BACKOFF_S[row.attempts - 1])
        uow.commit()
        return row.state


def deliver_due(
    uow_factory: Callable[[], UnitOfWork],
    sender: Sender,
    now: datetime,
    limit: int = DELIVERY_BATCH,
    workers: int = 4,
) -> dict[str, int]:
    """Post up to `limit` due deliveries (a few at a time); counts of the resulting states."""
    due = _due(uow_factory(), now, limit)
    if not due:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(due))) as pool:
        outcomes = list(pool.map(lambda d: sender(d.url, d.body, d.headers), due))
    counts: dict[str, int] = {}
    for item, outcome in zip(due, outcomes, strict=True):
        state = _record(uow_factory(), item.delivery_id, outcome, now)
        counts[state] = counts.get(state, 0) + 1
    return counts
