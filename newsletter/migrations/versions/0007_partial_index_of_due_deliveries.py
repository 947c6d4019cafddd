"""partial index of due deliveries

A claim takes the lowest pending ids of an issue; without this index it stepped
past every row already sent (see Delivery.__table_args__).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 11:55:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Written out rather than imported: a migration must keep meaning what it meant when written.
PENDING_SQL = "state IN ('queued', 'sending', 'retry')"


def upgrade() -> None:
    op.create_index('ix_delivery_due', 'delivery', ['issue_id', 'id'], unique=False,
                    postgresql_where=sa.text(PENDING_SQL), sqlite_where=sa.text(PENDING_SQL))


def downgrade() -> None:
    op.drop_index('ix_delivery_due', table_name='delivery')
