"""Daily event counts for /api/v1/stats; challenges by updated_at for the live stream.

Revision ID: 0003
Revises: 0002

The backfill counts the existing event log once (on 10 million events: about
a minute on SQLite, less on PostgreSQL); from then on the store keeps the
counts in the same transaction as each event write and each prune.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_counts",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=False),
        sa.Column("count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "day", "verdict"),
    )
    op.create_index("ix_event_counts_day", "event_counts", ["day"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    # the same day number the store computes in Python: floor(ts / 86400) (events are after 1970)
    day = "CAST(ts / 86400 AS INTEGER)" if sqlite else "CAST(floor(ts / 86400) AS INTEGER)"
    # built from this migration's own constants, no input
    op.execute(sa.text(
        f"INSERT INTO event_counts (user_id, day, verdict, count)"  # noqa: S608
        f" SELECT COALESCE(user_id, 0), {day}, verdict, COUNT(*) FROM events"
        f" GROUP BY COALESCE(user_id, 0), {day}, verdict"))
    op.create_index("ix_challenges_updated", "challenges", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_challenges_updated", table_name="challenges")
    op.drop_index("ix_event_counts_day", table_name="event_counts")
    op.drop_table("event_counts")
