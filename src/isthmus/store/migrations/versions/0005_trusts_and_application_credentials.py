"""trusts and application credentials (Keystone OS-TRUST and application credentials)

`trusts` holds the delegations of OS-TRUST (store/trusts.py) and
`application_credentials` the credentials a user makes for an application, their
secrets as salted scrypt hashes (store/application_credentials.py). Tokens issued
through either carry its id (api/identity/tokens.py, payload version 2) and die
with it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trusts",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("trustor_user_id", sa.String(length=64), nullable=False),
        sa.Column("trustee_user_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("impersonation", sa.Boolean(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("remaining_uses", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_trusts_trustor_user_id", "trusts", ["trustor_user_id"])
    op.create_index("ix_trusts_trustee_user_id", "trusts", ["trustee_user_id"])
    op.create_table(
        "application_credentials",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("unrestricted", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_app_cred_name"),
    )
    op.create_index("ix_application_credentials_user_id", "application_credentials", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_application_credentials_user_id", table_name="application_credentials")
    op.drop_table("application_credentials")
    op.drop_index("ix_trusts_trustee_user_id", table_name="trusts")
    op.drop_index("ix_trusts_trustor_user_id", table_name="trusts")
    op.drop_table("trusts")
