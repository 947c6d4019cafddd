"""issue_tally: per-issue counters for the statistics (issue 18 point 4)

Recipients, sent, failed, skipped, delivered, bounced, complained, opens and clicks per issue,
kept in the same transaction as the rows they count (newsletter/tallies.py), so `newsletter
stats`, the console and GET /api/v1/stats read a few rows instead of scanning every delivery and
event. Filled here from the rows already on record (one grouped count per issue).

Revision ID: 0029
Revises: 0020
Create Date: 2026-12-02 13:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlmodel import Session


revision: str = '0029'
down_revision: Union[str, None] = '0027'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('issue_tally',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('shard', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('n', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_issue_tally_issue_id_issue'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issue_id', 'name', 'shard', name=op.f('pk_issue_tally'))
    )
    from newsletter.tallies import rebuild

    with Session(bind=op.get_bind()) as session:
        rebuild(session)


def downgrade() -> None:
    op.drop_table('issue_tally')
