"""Sign-up addresses (issue 19): tags and who wrote to them; the tag a message came in by on events.

Revision ID: 0011
Revises: 0010

- tags: per user and name, on one of the user's addresses; dated (the address carries its last day and a
  MAC), the folder its mail goes to, expiry and revocation (kept: mail to a revoked tag stays refused),
  and how much mail it received or refused.
- tag_senders: per tag and envelope sender, how many messages (the app's "from whom").
- events.tag: the tag's name, NULL for mail that came in by no tag.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("dated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("folder", sa.String(length=10), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("received", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refused", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_received_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "name", name="uq_tags_user_name"),
    )
    op.create_table(
        "tag_senders",
        sa.Column("tag_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["tag_id"], ["tags.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tag_id", "sender"),
    )
    # a plain ALTER TABLE ADD COLUMN on both: the events table may be millions of rows, never copied
    op.add_column("events", sa.Column("tag", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("tag")
    op.drop_table("tag_senders")
    op.drop_table("tags")
