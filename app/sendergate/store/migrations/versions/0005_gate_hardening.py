"""Closing doors around the gate (issue 12): authentication seen at challenge time, one stored
CAPTCHA per challenge, confirmation-page rate limits shared by all nodes.

Revision ID: 0005
Revises: 0004

- challenges.auth: a short summary of SPF/DKIM/DMARC seen when the challenge's latest link
  was issued ("spf=pass:friend.example dkim=pass:friend.example dmarc=pass"); NULL when the
  checks did not run. Copied to list_entries.auth when the sender confirms.
- captchas: the challenge's current CAPTCHA: its answer and its one rendering (picture, and
  the sound when asked for). A new picture is a new answer: nobody can vote across renderings.
- rate_limits: per-minute counters of the confirmation page's limits, shared by every node.
- ix_challenges_expires: housekeeping prunes challenges by expiry.
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("challenges") as batch_op:
        batch_op.add_column(sa.Column("auth", sa.Text(), nullable=True))
    with op.batch_alter_table("list_entries") as batch_op:
        batch_op.add_column(sa.Column("auth", sa.Text(), nullable=True))
    op.create_index("ix_challenges_expires", "challenges", ["expires_at"])
    op.create_table(
        "captchas",
        sa.Column("challenge_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=40), nullable=False),
        sa.Column("answer", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=True),
        sa.Column("wav", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["challenge_id"], ["challenges.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("challenge_id"),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("minute", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "minute"),
    )
    op.create_index("ix_rate_limits_minute", "rate_limits", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_rate_limits_minute", table_name="rate_limits")
    op.drop_table("rate_limits")
    op.drop_table("captchas")
    op.drop_index("ix_challenges_expires", table_name="challenges")
    with op.batch_alter_table("list_entries") as batch_op:
        batch_op.drop_column("auth")
    with op.batch_alter_table("challenges") as batch_op:
        batch_op.drop_column("auth")
