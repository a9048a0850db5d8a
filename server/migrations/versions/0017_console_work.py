"""the console's work: agreements per language, the handover's witness, contact notes, follow-up
dates and the opt-in daily overdue digest

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

An agreement version is now written in several languages (fi, sv, en, and plain-language
variants): the unique key becomes (organisation, version, language) and existing rows are
Finnish. A loan records who witnessed the client sign the printed handover document and a
counsellor's follow-up date; `loan_notes` holds contact notes ("called, no answer"). A user may
give a work e-mail and opt in to a daily digest of their overdue loans.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(
            sa.Column("language", sa.String(length=8), nullable=False, server_default="fi")
        )
        batch.drop_constraint("uq_agreements_organisation_id", type_="unique")
        batch.create_unique_constraint(
            "uq_agreements_organisation_id", ["organisation_id", "version", "language"]
        )
    with op.batch_alter_table("loans") as batch:
        batch.add_column(sa.Column("witnessed_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("follow_up_on", sa.Date(), nullable=True))
        batch.create_foreign_key("fk_loans_witnessed_by_users", "users", ["witnessed_by"], ["id"])
        batch.create_index("ix_loans_follow_up_on", ["follow_up_on"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch.add_column(
            sa.Column("overdue_digest", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("digest_sent_on", sa.Date(), nullable=True))
    op.create_table(
        "loan_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            ["loans.id"],
            name=op.f("fk_loan_notes_loan_id_loans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_loan_notes_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_notes")),
    )
    op.create_index(op.f("ix_loan_notes_loan_id"), "loan_notes", ["loan_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_loan_notes_loan_id"), table_name="loan_notes")
    op.drop_table("loan_notes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("digest_sent_on")
        batch.drop_column("overdue_digest")
        batch.drop_column("email")
    with op.batch_alter_table("loans") as batch:
        batch.drop_index("ix_loans_follow_up_on")
        batch.drop_constraint("fk_loans_witnessed_by_users", type_="foreignkey")
        batch.drop_column("follow_up_on")
        batch.drop_column("witnessed_by")
    with op.batch_alter_table("agreements") as batch:
        batch.drop_constraint("uq_agreements_organisation_id", type_="unique")
        batch.create_unique_constraint(
            "uq_agreements_organisation_id", ["organisation_id", "version"]
        )
        batch.drop_column("language")
