"""events by user and sign-up address: GET /events?tag= for a user's page.

Revision ID: 0015
Revises: 0014

Partial (tag IS NOT NULL): only mail by a sign-up address pays the index on its write; the refusal path's
events (tag NULL) do not. Without it, a rarely used tag's page read the user's whole log: measured with 1 M
events (tests/bench/gen_events.py), the user's 80,000, a tag on 40 of them: ~100 ms on SQLite, ~120 ms on
PostgreSQL (a bitmap scan of all 80,000 and a sort); with it under 1 ms on both (the index read backwards).
"""
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_events_user_tag ON events (user_id, tag, id) WHERE tag IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_user_tag")
