"""The scheduler's jobs, one module each: what `Background` (entrypoints/background.py) runs,
while it holds the `background` lease, on its schedule.

Each job is a plain function, `run(ctx, now)`, given a `JobContext` (context.py): it opens no
database session, but calls service-layer handlers with fresh units of work (`ctx.uow()`), and
publishes through the context's MQTT callables. What runs when:

every round (tick_s, or at once when work is committed: adapters/wakeup.py)
    dispatch_signals, publish_desired, dispatch_commands, and the fleet sweep while one is
    under way (reconcile)
every LEASE_RENEW_S (3 s)
    expire_commands
every second
    support_timeouts, broker_auth (when the server manages the broker's files),
    deliver_webhooks (in a thread of its own)
every 10 s (while no sweep is under way)
    republish_behind
every minute
    catch_up_versions, escalate_overdue
every 10 minutes
    prune_history
every 15 minutes
    overdue_digest (the opt-in daily e-mail: once a day per user, when SMTP is configured),
    refresh_groups (remote groups' meetings on the participants' tablets: past ones drop out,
    the next week's come in)
every hour
    anonymise_loans
"""
