"""partial index of providers' message ids

`ix_delivery_provider_message_id` held an entry for every version of every delivery row, though
only rows sent through an HTTP provider ever carry a provider's id (SMTP sends, queued, sending,
retry, failed and skipped rows all hold NULL). PostgreSQL cannot update a delivery row in place
(HOT) when its state changes (the state is in other indexes), so each claim and each recorded
result wrote a NULL entry into this index too: two index writes per message for nothing. The
index now holds the rows that have an id; the webhook lookup (`provider_message_id = :id`,
feedback/rules.py) implies IS NOT NULL, so PostgreSQL and SQLite still use it.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03 08:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0030'
down_revision: Union[str, None] = '0029'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Written out rather than imported: a migration must keep meaning what it meant when written.
HAS_ID = "provider_message_id IS NOT NULL"


def upgrade() -> None:
    op.drop_index('ix_delivery_provider_message_id', table_name='delivery')
    op.create_index('ix_delivery_provider_message_id', 'delivery', ['provider_message_id'], unique=False,
                    postgresql_where=sa.text(HAS_ID), sqlite_where=sa.text(HAS_ID))


def downgrade() -> None:
    op.drop_index('ix_delivery_provider_message_id', table_name='delivery')
    op.create_index('ix_delivery_provider_message_id', 'delivery', ['provider_message_id'], unique=False)
