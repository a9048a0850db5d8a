"""The scheduler's housekeeping handlers over work that lives in other service modules: each
runs it in a transaction of its own and commits.

- `anonymise_loans`: client references of loans ended longer ago than the retention
  (loans.anonymise_ended), and those loans' contact notes (contact_notes.forget_anonymised);
- `prune_history`: status reports past their age or per-device limit (ingest.prune_history);
- `support_timeouts`: remote-support sessions whose consent, setup or length ran out
  (support_events.tick).
"""

from __future__ import annotations

from datetime import datetime

from server.adapters.metrics import SupportObserver
from server.service_layer import contact_notes, ingest, loans, support_events
from server.service_layer.unit_of_work import UnitOfWork


def anonymise_loans(uow: UnitOfWork, now: datetime, retention_days: int) -> int:
    """Anonymise the client references of loans ended over `retention_days` ago; how many."""
    with uow:
        count = loans.anonymise_ended(uow.session, now, retention_days)
        contact_notes.forget_anonymised(uow.session)  # the notes go with the reference
        uow.commit()
    return count


def prune_history(uow: UnitOfWork, now: datetime, max_age_days: int, per_device: int) -> int:
    """Delete status reports older than `max_age_days` or beyond `per_device`; how many."""
    with uow:
        removed = ingest.prune_history(uow.session, now, max_age_days, per_device)
        uow.commit()
    return removed


def support_timeouts(uow: UnitOfWork, now: datetime, metrics: SupportObserver) -> int:
    """End remote-support sessions whose consent, setup or length ran out; how many."""
    with uow:
        changed = support_events.tick(uow.session, now, metrics)
        uow.commit()
    return changed
