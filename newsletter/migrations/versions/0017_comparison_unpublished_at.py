"""comparison.unpublished_at: editors can take a comparison down without deleting it

A nullable timestamp (NULL = published, the state of every row from before this revision).
An unpublished comparison leaves the public page and the weekly selection; sent issues keep
their items, so the ledger of what readers got stays whole. The comparison table has no
AUTOINCREMENT, so SQLite's batch rebuild needs no table_kwargs.

Revision ID: 0017
Revises: 0018
Create Date: 2026-12-02 10:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0017'
down_revision: Union[str, None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('comparison') as batch_op:
        batch_op.add_column(sa.Column('unpublished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('comparison') as batch_op:
        batch_op.drop_column('unpublished_at')
