"""remote and hybrid groups: sessions, their participants (loans), attendance from the tablets'
usage reports, and a unit's video-service join link

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

A counsellor schedules a group session (once or weekly) for clients on loan; the participants'
tablets get its occurrences in their desired state (docs/protocol.md §9.1 `groups`, never the
title) and report the seconds spent in each (§18 `groups`), kept per occurrence, device and
day for the programme report.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("group_join_url", sa.String(length=500), nullable=True))
    op.create_table(
        "group_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=80), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("weekly", sa.Boolean(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("join_url", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_group_sessions_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_group_sessions_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_group_sessions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_sessions")),
    )
    op.create_index(
        "ix_group_sessions_org_starts", "group_sessions", ["organisation_id", "starts_at"]
    )
    op.create_index(op.f("ix_group_sessions_unit_id"), "group_sessions", ["unit_id"])
    op.create_table(
        "group_participants",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["group_sessions.id"],
            name=op.f("fk_group_participants_group_id_group_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            ["loans.id"],
            name=op.f("fk_group_participants_loan_id_loans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "loan_id", name=op.f("pk_group_participants")),
    )
    op.create_table(
        "group_attendance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.String(length=40), nullable=False),
        sa.Column("occurrence_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["group_sessions.id"],
            name=op.f("fk_group_attendance_group_id_group_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            ["loans.id"],
            name=op.f("fk_group_attendance_loan_id_loans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_group_attendance_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_attendance")),
        sa.UniqueConstraint(
            "occurrence_id", "device_id", "day", name="uq_group_attendance_occ_dev_day"
        ),
    )
    op.create_index(op.f("ix_group_attendance_group_id"), "group_attendance", ["group_id"])
    op.create_index(op.f("ix_group_attendance_loan_id"), "group_attendance", ["loan_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_group_attendance_loan_id"), table_name="group_attendance")
    op.drop_index(op.f("ix_group_attendance_group_id"), table_name="group_attendance")
    op.drop_table("group_attendance")
    op.drop_table("group_participants")
    op.drop_index(op.f("ix_group_sessions_unit_id"), table_name="group_sessions")
    op.drop_index("ix_group_sessions_org_starts", table_name="group_sessions")
    op.drop_table("group_sessions")
    with op.batch_alter_table("units") as batch:
        batch.drop_column("group_join_url")
