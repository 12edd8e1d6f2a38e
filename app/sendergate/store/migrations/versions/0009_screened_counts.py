"""Screened and bulk events per user, sender and day for /api/v1/screened (issue 18 item 3).

Revision ID: 0009
Revises: 0005

The backfill groups the existing screened and bulk events once; from then on the store keeps the
rows in the same transaction as each event write and each prune (Store.recount_events rebuilds them).
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "screened_counts",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("screened", big, nullable=False),
        sa.Column("bulk", big, nullable=False),
        sa.Column("first_ts", sa.Float(), nullable=False),
        sa.Column("last_ts", sa.Float(), nullable=False),
        sa.Column("last_id", big, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "sender", "day"),
    )
    op.create_index("ix_screened_counts_day", "screened_counts", ["day"])
    op.create_index("ix_screened_counts_user_last", "screened_counts", ["user_id", "last_id"])
    op.create_index("ix_screened_counts_last", "screened_counts", ["last_id"])
    op.create_index("ix_screened_counts_sender", "screened_counts", ["sender", "day"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    # as store/events.py's screened_rollup_sql (kept here as it was at this revision): the day as the store
    # computes it, floor(ts / 86400); senders lower-cased in ASCII only, as SQLite's lower() and the store do
    day = "CAST(ts / 86400 AS INTEGER)" if sqlite else "CAST(floor(ts / 86400) AS INTEGER)"
    lower = ("lower(sender)" if sqlite
             else "translate(sender, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
    op.execute(sa.text(  # built from this migration's own constants, no input
        f"INSERT INTO screened_counts (user_id, sender, day, screened, bulk, first_ts, last_ts, last_id)"  # noqa: S608
        f" SELECT COALESCE(user_id, 0), {lower}, {day}, SUM(CASE WHEN verdict = 'screened' THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN verdict = 'bulk' THEN 1 ELSE 0 END), MIN(ts), MAX(ts), MAX(id) FROM events"
        f" WHERE verdict IN ('screened', 'bulk') AND sender != '' GROUP BY 1, 2, 3"))


def downgrade() -> None:
    op.drop_index("ix_screened_counts_sender", table_name="screened_counts")
    op.drop_index("ix_screened_counts_last", table_name="screened_counts")
    op.drop_index("ix_screened_counts_user_last", table_name="screened_counts")
    op.drop_index("ix_screened_counts_day", table_name="screened_counts")
    op.drop_table("screened_counts")
