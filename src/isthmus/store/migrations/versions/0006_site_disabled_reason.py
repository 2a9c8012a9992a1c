"""site disabled reason: sites.disabled_reason

Why an admin disabled a site's scheduling, as Nova keeps a compute service's
`disabled_reason` (os-services: api/compute/services.py, intent/sites.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_reason", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("disabled_reason")
