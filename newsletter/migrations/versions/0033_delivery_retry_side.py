"""delivery_retry: retries kept beside the claims' walk, so a retry far behind no longer holds the floor

Since 0032 a claim walks an issue's ids from its cursor's floor, the lowest id not final, and
checks each row's state on the row (no index of `delivery` names the state, so that every claim
and result updates the row in place, HOT). One retry due in an hour far behind the front held the
floor there, and every rescan (every 10 s, by every worker) walked every row sent since. A row here
per delivery that went to retry (its due time), written in the same transaction as the retry
(newsletter/delivery/retry_side.py): the floor ignores these rows, the claims take them by (issue,
due_at). `delivery` gets no index and the normal path no write.

Filled from the deliveries in `retry` now (their next attempt as due time).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-03 17:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0033'
down_revision: Union[str, None] = '0032'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('delivery_retry',
    sa.Column('delivery_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['delivery.id'], name=op.f('fk_delivery_retry_delivery_id_delivery'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_delivery_retry_issue_id_issue'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('delivery_id', name=op.f('pk_delivery_retry'))
    )
    op.create_index('ix_delivery_retry_issue_due', 'delivery_retry', ['issue_id', 'due_at'], unique=False)
    op.execute("INSERT INTO delivery_retry (delivery_id, issue_id, due_at) "
               "SELECT id, issue_id, next_attempt_at FROM delivery "
               "WHERE state = 'retry' AND next_attempt_at IS NOT NULL")


def downgrade() -> None:
    op.drop_index('ix_delivery_retry_issue_due', table_name='delivery_retry')
    op.drop_table('delivery_retry')
