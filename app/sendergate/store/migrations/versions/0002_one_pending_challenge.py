"""At most one pending challenge per user and sender, even with several workers or nodes.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Older duplicates (from before this index) are closed as expired, keeping the newest.
    op.execute(sa.text(
        "UPDATE challenges SET status = 'expired' WHERE status = 'pending' AND id NOT IN ("
        " SELECT max_id FROM (SELECT MAX(id) AS max_id FROM challenges WHERE status = 'pending'"
        " GROUP BY user_id, sender) AS newest)"))
    op.create_index("uq_challenges_one_pending", "challenges", ["user_id", "sender"], unique=True,
                    sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index("uq_challenges_one_pending", table_name="challenges")
