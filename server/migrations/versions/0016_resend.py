"""commands and support signals: the device's presence position at each send

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

A broker that restarts without its store forgets the messages it held for devices; the device
reconnects with the same boot (a new birth, a higher presence seq). To send such messages
again, a command records the device's whole presence position at its last send (`sent_seq`
next to `sent_boot`), and so does a remote-support signal (`sent_boot`, `sent_seq`, with a
count of its sends). Rows sent before this revision have no seq (NULL, taken as -1): a command
still waiting for its device's acknowledgement is sent once more when the device is next seen
online, which the device's de-duplication by cmd_id makes harmless.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.add_column(sa.Column("sent_seq", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("support_signals") as batch:
        batch.add_column(sa.Column("sent_boot", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sent_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sends", sa.Integer(), nullable=False, server_default="0"))
    signals = sa.table(
        "support_signals", sa.column("sent_at", sa.DateTime()), sa.column("sends", sa.Integer())
    )
    op.execute(signals.update().where(signals.c.sent_at.is_not(None)).values(sends=1))


def downgrade() -> None:
    with op.batch_alter_table("support_signals") as batch:
        batch.drop_column("sends")
        batch.drop_column("sent_seq")
        batch.drop_column("sent_boot")
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("sent_seq")
