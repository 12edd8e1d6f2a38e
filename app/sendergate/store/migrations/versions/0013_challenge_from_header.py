"""The Pending screener (issue 17 item 1): each challenge keeps the latest refused message's From header.

Revision ID: 0013
Revises: 0010

- challenges.from_header: written by the statement that already writes the challenge's subject (no extra
  store round trip on the refusal path); the API shows its display name, sanitised. NULL for challenges
  opened before the upgrade (they show the address alone).
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("challenges") as batch_op:
        batch_op.add_column(sa.Column("from_header", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("challenges") as batch_op:
        batch_op.drop_column("from_header")
