"""Devices and pairing codes (issue 16 item 1).

Revision ID: 0006
Revises: 0005

- api_tokens.name: every token is a device with a name. Tokens issued before this revision become
  the device "script" (what `users token` replaces), so they keep working unchanged.
- pairing_codes: one-time codes that pair a device; only their sha256 is stored.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=False, server_default="script"))
    op.create_table(
        "pairing_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_index("ix_pairing_codes_user_id", "pairing_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_pairing_codes_user_id", table_name="pairing_codes")
    op.drop_table("pairing_codes")
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_column("name")
