"""issue_send_rate: an issue's messages sent per 10 seconds, a ring of 32 buckets per shard

The console's send progress showed "sent per minute over the last 5 minutes" from a count of the
issue's rows sent since then, every second while the page is open: no index may name `state` or
`sent_at` (0032: the rows are updated in place), so it read every row of the issue each time.
Each recorded batch now adds its sent messages to its 10-second bucket here, in the same
transaction (newsletter/send_rate.py); the page sums at most 32 buckets per shard.

Filled for the issues being sent now from their rows sent in the last 320 seconds (the window's
buckets), as newsletter/send_rate.rebuild does (written out: a migration keeps its meaning).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-03 17:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0034'
down_revision: Union[str, None] = '0033'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUCKET_SECONDS, SLOTS = 10, 32


def upgrade() -> None:
    op.create_table('issue_send_rate',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('slot', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('shard', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('n', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_issue_send_rate_issue_id_issue'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issue_id', 'slot', 'shard', name=op.f('pk_issue_send_rate'))
    )
    if op.get_bind().dialect.name == "postgresql":
        bucket = f"floor(extract(epoch FROM sent_at) / {BUCKET_SECONDS})::bigint"
        recent = f"sent_at >= now() - interval '{BUCKET_SECONDS * SLOTS} seconds'"
    else:  # SQLite: the stored text, to the whole second
        bucket = f"CAST(strftime('%s', substr(sent_at, 1, 19)) AS INTEGER) / {BUCKET_SECONDS}"
        recent = f"substr(sent_at, 1, 19) >= strftime('%Y-%m-%d %H:%M:%S', 'now', '-{BUCKET_SECONDS * SLOTS} seconds')"
    op.execute(f"INSERT INTO issue_send_rate (issue_id, slot, shard, bucket, n) "
               f"SELECT issue_id, {bucket} - {bucket} / {SLOTS} * {SLOTS}, 0, {bucket}, count(*) FROM delivery "
               f"WHERE state = 'sent' AND {recent} AND issue_id IN (SELECT id FROM issue WHERE state = 'sending') "
               f"GROUP BY issue_id, {bucket}")


def downgrade() -> None:
    op.drop_table('issue_send_rate')
