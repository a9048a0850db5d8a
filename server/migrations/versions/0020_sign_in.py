"""staff sign-in: single sign-on accounts, a second factor for local accounts, recovery codes,
how and when a console session was authenticated, and sign-ins on their way to a provider

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07

Users gain the SSO provider and subject they sign in with (their role and units then come
from the provider's groups), a break-glass flag, and a TOTP secret with its last accepted
step. A console session records its method and the time of the last proof of identity, for
re-authentication before destructive acts. Existing sessions count as password sign-ins at
their creation.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("sso_provider", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("sso_subject", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("break_glass", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_users_sso_provider"), ["sso_provider", "sso_subject"]
        )
    with op.batch_alter_table("console_sessions") as batch:
        batch.add_column(
            sa.Column(
                "auth_method", sa.String(length=20), server_default="password", nullable=False
            )
        )
        batch.add_column(sa.Column("sso_provider", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("authenticated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column(
                "pending_second_factor", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch.add_column(sa.Column("id_token_hint", sa.Text(), nullable=True))
    op.execute("UPDATE console_sessions SET authenticated_at = created_at")
    with op.batch_alter_table("console_sessions") as batch:
        batch.alter_column(
            "authenticated_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch.alter_column("auth_method", server_default=None)
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"])
    op.create_table(
        "sso_attempts",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("next_path", sa.String(length=500), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_sso_attempts")),
    )


def downgrade() -> None:
    op.drop_table("sso_attempts")
    op.drop_index(op.f("ix_recovery_codes_user_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    with op.batch_alter_table("console_sessions") as batch:
        for column in (
            "id_token_hint",
            "pending_second_factor",
            "authenticated_at",
            "sso_provider",
            "auth_method",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_sso_provider"), type_="unique")
        for column in (
            "totp_last_step",
            "totp_enabled_at",
            "totp_secret",
            "break_glass",
            "last_sign_in_at",
            "sso_subject",
            "sso_provider",
        ):
            batch.drop_column(column)
