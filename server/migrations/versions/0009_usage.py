"""usage: daily totals per device-day and per unit-day, and a unit's collection switch

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-14

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
CATEGORIES = ("chat", "appointment", "digipath", "group", "other")


def _figures(kind: sa.types.TypeEngine[int]) -> list[sa.Column[int]]:
    names = ["active_s", *(f"launches_{c}" for c in CATEGORIES), "support_s"]
    return [sa.Column(name, kind, nullable=False) for name in names]


def upgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("usage_collection", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.create_table(
        "usage_device_days",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        *_figures(sa.Integer()),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("boot", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_usage_device_days_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_usage_device_days_loan_id_loans")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_usage_device_days_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("device_id", "day", "loan_id", name=op.f("pk_usage_device_days")),
    )
    with op.batch_alter_table("usage_device_days", schema=None) as batch_op:
        batch_op.create_index("ix_usage_device_days_loan_day", ["loan_id", "day"], unique=False)
    op.create_table(
        "usage_unit_days",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("device_days", sa.Integer(), nullable=False),
        *_figures(sa.BigInteger()),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_usage_unit_days_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("unit_id", "day", name=op.f("pk_usage_unit_days")),
    )


def downgrade() -> None:
    op.drop_table("usage_unit_days")
    with op.batch_alter_table("usage_device_days", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_device_days_loan_day")
    op.drop_table("usage_device_days")
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_column("usage_collection")
