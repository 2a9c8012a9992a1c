"""drift and foreign objects: bindings.drifted_at, sites.foreign_objects, sites.swept_at

A binding whose object vanished from its site outside Isthmus is marked drifted
(the engine never recreates it); a site remembers what its last sweep found there
that Isthmus did not make. See engine/drift.py.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drifted_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("foreign_objects", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("swept_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("swept_at")
        batch_op.drop_column("foreign_objects")
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.drop_column("drifted_at")
