"""followup, followup_delivery: follow-up mails when a verdict changes materially (issue 17.3)

Two new tables. `followup` is the draft and its record (what changed, frozen when drafted);
`followup_delivery` is its outbox, one row per follow-up and reader (unique), with the same
queue columns as `delivery`.

Revision ID: 0026
Revises: 0020
Create Date: 2026-12-02 13:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0026'
down_revision: Union[str, None] = '0020'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    string = sqlmodel.sql.sqltypes.AutoString
    moment = sqlmodel.sql.sqltypes.UTCDateTime
    op.create_table('followup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('subject', string(length=200), nullable=False),
    sa.Column('preheader', string(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('view', sa.JSON(), nullable=False),
    sa.Column('forced', sa.Boolean(), nullable=False),
    sa.Column('state', string(length=16), nullable=False),
    sa.Column('created_by', string(length=300), nullable=False),
    sa.Column('created_at', moment(), nullable=False),
    sa.Column('started_at', moment(), nullable=True),
    sa.Column('finished_at', moment(), nullable=True),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparison.id'], name=op.f('fk_followup_comparison_id_comparison')),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_followup_issue_id_issue'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_followup')),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_followup_comparison_id'), 'followup', ['comparison_id'], unique=False)
    op.create_index(op.f('ix_followup_state'), 'followup', ['state'], unique=False)
    op.create_table('followup_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('followup_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('state', string(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_until', moment(), nullable=True),
    sa.Column('next_attempt_at', moment(), nullable=True),
    sa.Column('claimed_by', string(length=100), nullable=True),
    sa.Column('message_id', string(length=250), nullable=True),
    sa.Column('provider_message_id', string(length=250), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', moment(), nullable=False),
    sa.Column('sent_at', moment(), nullable=True),
    sa.ForeignKeyConstraint(['followup_id'], ['followup.id'], name=op.f('fk_followup_delivery_followup_id_followup'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'],
                            name=op.f('fk_followup_delivery_subscriber_id_subscriber'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_followup_delivery')),
    sa.UniqueConstraint('followup_id', 'subscriber_id', name=op.f('uq_followup_delivery_followup_id_subscriber_id')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_followup_delivery_state_id', 'followup_delivery', ['state', 'id'], unique=False)
    op.create_index(op.f('ix_followup_delivery_subscriber_id'), 'followup_delivery', ['subscriber_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_followup_delivery_subscriber_id'), table_name='followup_delivery')
    op.drop_index('ix_followup_delivery_state_id', table_name='followup_delivery')
    op.drop_table('followup_delivery')
    op.drop_index(op.f('ix_followup_state'), table_name='followup')
    op.drop_index(op.f('ix_followup_comparison_id'), table_name='followup')
    op.drop_table('followup')
