"""server usage: the table server_usage

What a deleted server ran (project, name, flavor, started_at, ended_at), kept after
its resource row goes, so os-simple-tenant-usage counts the hours of servers that
no longer exist (api/compute/usage.py, store/usage.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_usage",
        sa.Column("server_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("flavor", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("server_id"),
    )
    op.create_index("ix_server_usage_project_id", "server_usage", ["project_id"])
    op.create_index("ix_server_usage_ended_at", "server_usage", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_server_usage_ended_at", table_name="server_usage")
    op.drop_index("ix_server_usage_project_id", table_name="server_usage")
    op.drop_table("server_usage")
