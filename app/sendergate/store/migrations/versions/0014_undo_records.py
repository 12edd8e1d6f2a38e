"""Undo records: what a decision or list change did, so its maker can reverse it exactly for a few
minutes (issue 17 item 2).

Revision ID: 0014
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "undo_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("challenge_id", sa.Integer(), nullable=True),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("entry_key", sa.String(length=340), nullable=True),
        sa.Column("prior_status", sa.String(length=10), nullable=True),
        sa.Column("snapshot", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_undo_records_created_at", "undo_records", ["created_at"])
    op.create_index("ix_undo_records_challenge", "undo_records", ["challenge_id"])
    op.create_index("ix_undo_records_entry", "undo_records", ["entry_id"])


def downgrade() -> None:
    op.drop_index("ix_undo_records_entry", table_name="undo_records")
    op.drop_index("ix_undo_records_challenge", table_name="undo_records")
    op.drop_index("ix_undo_records_created_at", table_name="undo_records")
    op.drop_table("undo_records")
