"""device_status: what the device enforces of the policy it applied (issue 15)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

A status report says which keys of its applied policy the device cannot enforce or failed to
(docs/protocol.md §6.2). The latest one is kept as reported, and whether it names none, so
that the drift of the whole fleet is read from one column. Devices that reported before this
revision have said nothing yet (NULL): they are not counted as converged until they do.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("device_status") as batch:
        batch.add_column(sa.Column("enforcement", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("all_enforced", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_status") as batch:
        batch.drop_column("all_enforced")
        batch.drop_column("enforcement")
