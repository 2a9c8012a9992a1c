"""token revocation: revocation_events, identity_revision; the old signing key goes

Tokens became Fernet tokens whose keys live in `<data-dir>/token-keys/`
(api/identity/token_keys.py), so the HMAC key kept in `settings.token_key` is deleted:
tokens of the old format stop working (401). `revocation_events` holds Keystone's
revocation events (user disabled, deleted or password changed; role revoked;
project disabled or deleted) and `identity_revision` the one counter every
identity change bumps, which tells each process when its cache of validated
tokens is stale (store/token_revocation.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revocation_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("issued_before", sa.Float(), nullable=False),
    )
    op.create_index("ix_revocation_events_user_id", "revocation_events", ["user_id"])
    op.create_index("ix_revocation_events_project_id", "revocation_events", ["project_id"])
    revision_table = op.create_table(
        "identity_revision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(revision_table, [{"id": 1, "revision": 0}])
    op.execute(sa.text("DELETE FROM settings WHERE key = 'token_key'"))


def downgrade() -> None:
    op.drop_table("identity_revision")
    op.drop_index("ix_revocation_events_project_id", table_name="revocation_events")
    op.drop_index("ix_revocation_events_user_id", table_name="revocation_events")
    op.drop_table("revocation_events")
