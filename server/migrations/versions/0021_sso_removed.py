"""users.sso_removed_at: an account made inactive by its identity provider's groups

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07

A sign-in that finds the person in none of the mapped groups deactivates the account and
records when; a later sign-in in a mapped group restores it. An account an administrator
deactivated (no such time) stays deactivated whatever the provider says.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Two versions of 0020 were committed during its session (the second had this column);
    # neither was released, but a database may be at either: add it only where it is missing.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")}
    if "sso_removed_at" in columns:
        return
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("sso_removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sso_removed_at")
