"""created_repo: whether the push created the Hub repository; local URIs without server paths

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Versions registered before this was recorded count as not having created their
    # repository: `delete_repo=true` is refused for them.
    op.add_column(
        "models",
        sa.Column("created_repo", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema="registry",
    )
    # Hub repo ids are case-insensitive: the delete guard counts versions naming a repository
    # whatever the case.
    op.create_index(
        "ix_models_repo", "models", [sa.text("lower(repo_id)")], unique=False, schema="registry"
    )
    # Models in a worker's local store were registered with a `file://` path of the worker's
    # machine; users see `local://owner/name@revision` instead (ftd-serve resolves it against its
    # own store folder).
    op.execute(
        "UPDATE registry.models SET uri = 'local://' || repo_id || '@' || revision "
        "WHERE store = 'local' AND uri LIKE 'file:%'"
    )


def downgrade() -> None:
    # The rewritten URIs stay in the local:// form: the server paths are not kept anywhere.
    op.drop_index("ix_models_repo", table_name="models", schema="registry")
    op.drop_column("models", "created_repo", schema="registry")
