"""Mailbox modes (issue 16 item 3): per user and per address, enforce | observe | off.

Revision ID: 0007
Revises: 0005

- users.mode: the user's mode; NULL = `[challenge] default_mode` of the config.
- user_addresses.mode: one address's own mode (an alias such as info@); NULL = the user's.
Existing rows keep NULL: after the upgrade every mailbox works as before (the default is enforce).
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=10), nullable=True))
    with op.batch_alter_table("user_addresses") as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_addresses") as batch_op:
        batch_op.drop_column("mode")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("mode")
