"""fleet metrics: desired versions readable from an index (the policy JSON stays unread)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_device_desired_device_version", "device_desired", ["device_id", "version"])


def downgrade() -> None:
    op.drop_index("ix_device_desired_device_version", table_name="device_desired")
