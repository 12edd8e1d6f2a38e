"""PostgreSQL: events on (user_id, ts), so a user's `since` page reads that user's rows of the period
(issue 18 item 4).

Revision ID: 0010
Revises: 0009

Without it a user whose recent events are few next to their older ones had the page planned through
ix_events_user_id backward, reading all their rows (or through ix_events_ts, the whole site's period).
Measured against the refusal rate before adoption (resources/docs/benchmarks.md, bench_pg_refusal.py).
PostgreSQL only: SQLite was not measured to gain from it, and every index is paid on each event write.
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_events_user_ts", "events", ["user_id", "ts"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_events_user_ts", table_name="events")
