"""events by user and sign-up address: GET /events?tag= for a user's page.

Revision ID: 0015
Revises: 0014

Partial (tag IS NOT NULL): only mail by a sign-up address pays the index on its write; the refusal path's
events (tag NULL) do not. Without it, a rarely used tag's page read the user's whole log (80,000 events:
~100 ms on SQLite, ~120 ms on PostgreSQL; with it under 1 ms on both). Measured in resources/docs/benchmarks.md.
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
