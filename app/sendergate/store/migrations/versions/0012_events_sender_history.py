"""events by sender and by sender domain, for a sender's history (issue 17 item 3).

Revision ID: 0012
Revises: 0010

Events keep the envelope sender as given; the history route looks them up by lower(sender) and by the
lower-cased part after the first "@" (store/history.py spells the same expressions), each with id so a
keyset page reads the index backwards and stops at the page's end. Without them a sender's history reads
the caller's whole log. Measured against the refusal path (tests/bench/bench_pg_refusal.py, bench_smtp_ab.py).
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FIND_AT = {"sqlite": "instr(sender, '@')", "postgresql": "strpos(sender, '@')"}


def upgrade() -> None:
    find = FIND_AT[op.get_bind().dialect.name]
    op.execute("CREATE INDEX ix_events_sender_key ON events (lower(sender), id)")
    op.execute(f"CREATE INDEX ix_events_sender_domain ON events (lower(substr(sender, {find} + 1)), id)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_sender_domain")
    op.execute("DROP INDEX ix_events_sender_key")
