"""Statistics at scale: webhook_event.issue_id with an index per (issue, kind, delivery), and
consent_event (kind, created_at)

- webhook_event.issue_id: the issue of the event's delivery (a delivery never changes issue),
  filled for existing rows here and by the feedback rules from now on. With the index
  (issue_id, kind, delivery_id) an issue's delivered, bounced and complained deliveries are
  counted by an index-only scan of its events, instead of a join of every event with every
  delivery (about 5 s at a million deliveries on a busy machine, against well under one).
  No foreign key: the column is a copy for counting, and an issue's deletion cascades to its
  deliveries, whose events keep their history (delivery_id goes NULL) as before.
- consent_event (kind, created_at): unsubscribes per issue window and joins/leaves per week
  read only the events of the kind and window asked for, not the whole consent history.

SQLite rebuilds webhook_event in batch mode: it must keep AUTOINCREMENT (0009).

Revision ID: 0018
Revises: 0019
Create Date: 2026-12-02 10:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0018'
down_revision: Union[str, None] = '0019'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_event', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('issue_id', sa.Integer(), nullable=True))
    op.execute("UPDATE webhook_event SET issue_id = (SELECT delivery.issue_id FROM delivery "
               "WHERE delivery.id = webhook_event.delivery_id) WHERE delivery_id IS NOT NULL")
    op.create_index('ix_webhook_event_issue_kind_delivery', 'webhook_event', ['issue_id', 'kind', 'delivery_id'])
    op.create_index('ix_consent_event_kind_created', 'consent_event', ['kind', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_consent_event_kind_created', table_name='consent_event')
    op.drop_index('ix_webhook_event_issue_kind_delivery', table_name='webhook_event')
    with op.batch_alter_table('webhook_event', table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('issue_id')
