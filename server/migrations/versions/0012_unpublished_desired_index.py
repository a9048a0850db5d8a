"""scheduler: a partial index of the desired states not yet published

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPUBLISHED = "published_version < version"


def upgrade() -> None:
    op.create_index(
        "ix_device_desired_unpublished",
        "device_desired",
        ["changed_at"],
        postgresql_where=sa.text(UNPUBLISHED),
        sqlite_where=sa.text(UNPUBLISHED),
    )


def downgrade() -> None:
    op.drop_index("ix_device_desired_unpublished", table_name="device_desired")
