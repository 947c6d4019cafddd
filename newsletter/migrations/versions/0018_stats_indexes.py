"""consent_event (kind, created_at): the statistics' unsubscribes per issue and joins/leaves per week

Without it each figure scans the whole consent history (several events per reader, so millions
of rows at a million readers); with it, only the events of the kind and window asked for.
An index only: no table is rebuilt on SQLite.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-02 10:30:00
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0018'
down_revision: Union[str, None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index('ix_consent_event_kind_created', 'consent_event', ['kind', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_consent_event_kind_created', table_name='consent_event')
