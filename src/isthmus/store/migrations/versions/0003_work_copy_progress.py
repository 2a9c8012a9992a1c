"""work copy progress: work.progress_done, work.progress_total, work.progress_at

While the engine copies data into a site for a work item (image data), it keeps
how far the copy is on the item's row; cleared when the copy ends. See
engine/progress.py.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work", schema=None) as batch_op:
        batch_op.add_column(sa.Column("progress_done", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("progress_total", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("progress_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work", schema=None) as batch_op:
        batch_op.drop_column("progress_at")
        batch_op.drop_column("progress_total")
        batch_op.drop_column("progress_done")
