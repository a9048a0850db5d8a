"""device_status: the device's clock skew and implausible positions, and a sequence reset

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("device_status") as batch:
        batch.add_column(sa.Column("clock_skew_s", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("implausible_boot", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("implausible_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("implausible_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "trust_next_position",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("device_status") as batch:
        batch.drop_column("trust_next_position")
        batch.drop_column("implausible_at")
        batch.drop_column("implausible_seq")
        batch.drop_column("implausible_boot")
        batch.drop_column("clock_skew_s")
