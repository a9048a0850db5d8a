"""the pilots' ways of working: referrals into any unit's queue, declines with a reason,
support contacts by channel and length, and the client keeping the device

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

A loan request may come from a professional of another unit ("one contact is enough"): the
loan records the referring unit and the reason given, and a request the receiving unit turns
down records why (the referrer sees it). A contact note may record the contact's channel (phone
call, home visit, chat) and its length in minutes, for the programme's evaluation. A counsellor
may propose that the client keeps the device, with a reason, for IT support to approve.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("loans") as batch:
        batch.add_column(sa.Column("referred_from_unit_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("referral_reason", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("keep_proposed_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("keep_proposed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("keep_reason", sa.String(length=200), nullable=True))
        batch.create_foreign_key(
            "fk_loans_referred_from_unit_id_units", "units", ["referred_from_unit_id"], ["id"]
        )
        batch.create_foreign_key(
            "fk_loans_keep_proposed_by_users", "users", ["keep_proposed_by"], ["id"]
        )
        batch.create_index("ix_loans_referred_from_unit_id", ["referred_from_unit_id"])
        batch.create_index("ix_loans_requested_by", ["requested_by"])
    with op.batch_alter_table("loan_notes") as batch:
        batch.add_column(sa.Column("channel", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("loan_notes") as batch:
        batch.drop_column("minutes")
        batch.drop_column("channel")
    with op.batch_alter_table("loans") as batch:
        batch.drop_index("ix_loans_requested_by")
        batch.drop_index("ix_loans_referred_from_unit_id")
        batch.drop_constraint("fk_loans_keep_proposed_by_users", type_="foreignkey")
        batch.drop_constraint("fk_loans_referred_from_unit_id_units", type_="foreignkey")
        batch.drop_column("keep_reason")
        batch.drop_column("keep_proposed_at")
        batch.drop_column("keep_proposed_by")
        batch.drop_column("cancel_reason")
        batch.drop_column("referral_reason")
        batch.drop_column("referred_from_unit_id")
