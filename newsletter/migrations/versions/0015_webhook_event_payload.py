"""webhook_event.payload: the provider's record each event was read from, kept for audit

A nullable text column (JSON as the provider sent it, forgotten addresses replaced by their
hash; NULL for bounce-mailbox events and for rows from before this revision). In batch mode
SQLite may rebuild the table (the downgrade does): it must keep AUTOINCREMENT (0009).

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-02 07:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_event', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_event', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('payload')
