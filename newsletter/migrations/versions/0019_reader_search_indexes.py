"""Indexes for searching readers and suppressions by address or name prefix (issue 16)

The console and GET /api/v1/readers ask "address or name starts with p" as the range
p <= x < next(p) in code point order, a page at a time by address (subscribers/search.py).
On PostgreSQL that order is the "C" collation, which the existing unique index on email does
not have unless the database itself was created with it; these indexes give it explicitly.
On SQLite the BINARY order is already code point order, so only the name needs an index.

On a big table CREATE INDEX blocks writes to it while it builds (about 10 s per million readers
here); run the upgrade outside a send.

Revision ID: 0019
Revises: 0024
Create Date: 2026-12-02 10:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0019'
down_revision: Union[str, None] = '0024'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EMAIL_C = sa.text('email COLLATE "C"')


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index('ix_subscriber_email_c', 'subscriber', [EMAIL_C])
        op.create_index('ix_subscriber_name_c', 'subscriber', [sa.text('lower(name) COLLATE "C"'), EMAIL_C])
        op.create_index('ix_suppression_email_c', 'suppression', [EMAIL_C])
    else:
        op.create_index('ix_subscriber_name_lower', 'subscriber', [sa.text('lower(name)'), 'email'])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_suppression_email_c', table_name='suppression')
        op.drop_index('ix_subscriber_name_c', table_name='subscriber')
        op.drop_index('ix_subscriber_email_c', table_name='subscriber')
    else:
        op.drop_index('ix_subscriber_name_lower', table_name='subscriber')
