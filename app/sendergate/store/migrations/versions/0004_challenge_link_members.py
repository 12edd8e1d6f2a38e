"""One link for the challenges of several recipients (a stranger writing to alice and bob).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "challenge_link_members",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("challenge_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["token_hash"], ["challenge_tokens.token_hash"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["challenge_id"], ["challenges.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", "challenge_id"),
    )
    op.create_index("ix_challenge_link_members_challenge_id", "challenge_link_members", ["challenge_id"])


def downgrade() -> None:
    op.drop_index("ix_challenge_link_members_challenge_id", table_name="challenge_link_members")
    op.drop_table("challenge_link_members")
