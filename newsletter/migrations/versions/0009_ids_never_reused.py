"""ids never reused; a per-reader key in every signed link

SQLite hands the highest rowid out again after a delete unless the table was created with
AUTOINCREMENT, so a forgotten reader's id went to the next signup together with every link
and reference that named it. SQLite cannot add AUTOINCREMENT to a table: each table whose ids
links, Message-IDs or references name is rebuilt (batch mode, recreate="always"), its rows and
indexes copied. newsletter.migrate turns foreign keys off around the migration on SQLite, or
dropping the old `subscriber` table would cascade into every row that hangs off it.
PostgreSQL sequences never hand a value out twice: there only the new column is added.

subscriber.token_key: a random value per reader that links carry. Readers from before this
revision keep "" and their links (which carry no key) keep working.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 06:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Written out rather than imported: a migration must keep meaning what it meant when written.
TABLES = ('subscriber', 'consent_event', 'suppression', 'transactional_mail', 'issue', 'delivery', 'vote',
          'tracking_event', 'webhook_event')
PENDING_SQL = "state IN ('queued', 'sending', 'retry')"


def _rebuild(table: str, autoincrement: bool) -> None:
    with op.batch_alter_table(table, recreate='always',
                              table_kwargs={'sqlite_autoincrement': autoincrement}) as batch_op:
        if table == 'subscriber' and autoincrement:
            batch_op.add_column(sa.Column('token_key', sa.String(length=16), server_default='', nullable=False))
        if table == 'subscriber' and not autoincrement:
            batch_op.drop_column('token_key')


def _partial_index() -> None:
    """A rebuild may lose the partial index's WHERE (reflection): put it back as written in 0007."""
    op.execute('DROP INDEX IF EXISTS ix_delivery_due')
    op.create_index('ix_delivery_due', 'delivery', ['issue_id', 'id'], unique=False,
                    postgresql_where=sa.text(PENDING_SQL), sqlite_where=sa.text(PENDING_SQL))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.add_column('subscriber', sa.Column('token_key', sa.String(length=16), server_default='', nullable=False))
        return
    for table in TABLES:
        _rebuild(table, True)
    _partial_index()


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_column('subscriber', 'token_key')
        return
    for table in TABLES:
        _rebuild(table, False)
    _partial_index()
