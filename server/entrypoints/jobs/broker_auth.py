"""Write the broker's password and ACL files from the live device credentials, and make
Mosquitto reload them, when they changed (service_layer/broker_auth.py: BrokerAuthSync).

Runs every second, only when the server manages the broker's authentication
(broker_auth_dir). Returns whether the files were written.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext
from server.service_layer.broker_auth import sync_files


def run(ctx: JobContext, now: datetime, *, force: bool = False) -> bool:
    if ctx.broker_auth is None:
        return False
    return sync_files(ctx.uow(), ctx.broker_auth, now, force=force)
