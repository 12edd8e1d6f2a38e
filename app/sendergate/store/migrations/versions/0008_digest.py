"""The digest and telling approved senders (issue 16 items 4, 5).

Revision ID: 0008
Revises: 0005

- digest_settings: per user, the digest frequency (NULL = the configured default) and when the last
  digest went out (also the claim that stops two nodes sending the same one).
- digest_links_used: nonces of digest links already used (single use), until they would expire.
- notified_senders: approved senders already told they may write (at most once per user and sender).
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_settings",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("frequency", sa.String(length=10), nullable=True),
        sa.Column("last_sent_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "digest_links_used",
        sa.Column("nonce", sa.String(length=40), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_index("ix_digest_links_used_expires_at", "digest_links_used", ["expires_at"])
    op.create_table(
        "notified_senders",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "sender"),
    )


def downgrade() -> None:
    op.drop_table("notified_senders")
    op.drop_index("ix_digest_links_used_expires_at", table_name="digest_links_used")
    op.drop_table("digest_links_used")
    op.drop_table("digest_settings")
