"""one queue idiom for transactional mail; worker heartbeats

The transactional queue gets the delivery outbox's lease columns (`lease_until`,
`claimed_by`) and its `retry` state; it also carries the editors' notices and
test sends, which name an issue and no subscriber. `worker_heartbeat` lets a
worker take over the rows of a worker that died within seconds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('worker_heartbeat',
    sa.Column('worker_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('beat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_worker_heartbeat'))
    )
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_heartbeat_beat_at'), ['beat_at'], unique=False)
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issue_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.add_column(sa.Column('body', sa.Text(), nullable=True))
        batch_op.alter_column('subscriber_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_transactional_mail_issue_id_issue'), 'issue', ['issue_id'], ['id'],
                                    ondelete='CASCADE')
    # The old claim kept retries as `queued` with a future next_attempt_at and leased rows as
    # `sending` until next_attempt_at: both are `retry` at that time in the new states.
    op.execute("UPDATE transactional_mail SET state = 'retry' "
               "WHERE state IN ('queued', 'sending') AND next_attempt_at IS NOT NULL")


def downgrade() -> None:
    op.execute("UPDATE transactional_mail SET state = 'queued' WHERE state IN ('retry', 'sending')")
    op.execute("DELETE FROM transactional_mail WHERE subscriber_id IS NULL")
    with op.batch_alter_table('transactional_mail', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_transactional_mail_issue_id_issue'), type_='foreignkey')
        batch_op.alter_column('subscriber_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('body')
        batch_op.drop_column('subject')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('issue_id')
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_heartbeat_beat_at'))
    op.drop_table('worker_heartbeat')
