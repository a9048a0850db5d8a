"""devices: a staff lock (when, by whom, why) that holds until a person lifts it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCKED = "staff_locked_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("staff_locked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("staff_locked_by", sa.String(length=140), nullable=True))
        batch.add_column(sa.Column("staff_lock_reason", sa.String(length=500), nullable=True))
    op.create_index(
        "ix_devices_staff_locked",
        "devices",
        ["organisation_id", "id"],
        postgresql_where=sa.text(LOCKED),
        sqlite_where=sa.text(LOCKED),
    )


def downgrade() -> None:
    op.drop_index("ix_devices_staff_locked", table_name="devices")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("staff_lock_reason")
        batch.drop_column("staff_locked_by")
        batch.drop_column("staff_locked_at")
