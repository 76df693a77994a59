"""users: an index for the email prefix search, on PostgreSQL

`GET /users?email=` filters with `lower(email) LIKE 'prefix%'`. A btree in the
database's default collation cannot serve LIKE (unless the collation is C), so
without this index a selective prefix walks the whole (created_at, id) index.
`text_pattern_ops` compares bytes, which is what a prefix range needs.

Built CONCURRENTLY, outside the migration's transaction, so registrations and
profile updates are not blocked while it is built (about 0.5 s per million
users here). If the build fails it leaves an INVALID index behind: drop it
(`DROP INDEX CONCURRENTLY ix_users_email_pattern`) and upgrade again.
SQLite: nothing to do; it is the development database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_users_email_pattern"


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "users",
            [sa.func.lower(sa.column("email")).label("email_lower")],
            postgresql_ops={"email_lower": "text_pattern_ops"},
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    if not _postgresql():
        return
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="users", postgresql_concurrently=True)
