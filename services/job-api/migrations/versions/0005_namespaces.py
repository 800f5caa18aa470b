"""namespaces: organisation namespaces granted to users, linked Hugging Face accounts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "namespace_grants",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", "namespace"),
        schema="jobs",
    )
    # Hub names are compared without regard to case: one grant per user and name, whatever case.
    op.create_index(
        "uq_namespace_grants_user_namespace",
        "namespace_grants",
        ["user_id", sa.text("lower(namespace)")],
        unique=True,
        schema="jobs",
    )
    op.create_index(
        "ix_namespace_grants_namespace",
        "namespace_grants",
        [sa.text("lower(namespace)")],
        schema="jobs",
    )
    op.create_table(
        "hf_accounts",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("hf_username", sa.Text(), nullable=False),
        # Fernet token of the user's Hugging Face access token; the token itself is never stored.
        sa.Column("token_ciphertext", sa.Text(), nullable=False),
        sa.Column(
            "linked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id"),
        schema="jobs",
    )


def downgrade() -> None:
    op.drop_table("hf_accounts", schema="jobs")
    op.drop_index("ix_namespace_grants_namespace", table_name="namespace_grants", schema="jobs")
    op.drop_index(
        "uq_namespace_grants_user_namespace", table_name="namespace_grants", schema="jobs"
    )
    op.drop_table("namespace_grants", schema="jobs")
