"""support: remote-support sessions and their outgoing signal queue

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "support_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("started_by", sa.Integer(), nullable=False),
        sa.Column("started_by_name", sa.String(length=120), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("control_granted", sa.Boolean(), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("end_reason", sa.String(length=24), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("consent_deadline", TS, nullable=False),
        sa.Column("consent_at", TS, nullable=True),
        sa.Column("consent_result", sa.String(length=12), nullable=True),
        sa.Column("offer_sdp", sa.Text(), nullable=True),
        sa.Column("offer_at", TS, nullable=True),
        sa.Column("answer_sdp", sa.Text(), nullable=True),
        sa.Column("connected_at", TS, nullable=True),
        sa.Column("connection_type", sa.String(length=8), nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("max_duration_s", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_support_sessions_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_support_sessions_loan_id_loans")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_support_sessions_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["started_by"], ["users.id"], name=op.f("fk_support_sessions_started_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_support_sessions_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_sessions")),
    )
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_support_sessions_device_state", ["device_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_support_sessions_org_created", ["organisation_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_support_sessions_state"), ["state"], unique=False)
    op.create_table(
        "support_signals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["support_sessions.id"],
            name=op.f("fk_support_signals_session_id_support_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_signals")),
    )
    with op.batch_alter_table("support_signals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_signals_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_support_signals_sent_at"), ["sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("support_signals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_signals_sent_at"))
        batch_op.drop_index(batch_op.f("ix_support_signals_session_id"))
    op.drop_table("support_signals")
    with op.batch_alter_table("support_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_sessions_state"))
        batch_op.drop_index("ix_support_sessions_org_created")
        batch_op.drop_index("ix_support_sessions_device_state")
    op.drop_table("support_sessions")
