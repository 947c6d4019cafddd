"""issue_record: what an issue carried when it started sending, frozen (issue 17.2)

One row per issue that started sending: the issue's whole view as JSON (each comparison's
verdict line, tools, Panel ship %, Community % and its number of votes at that moment). Issues
sent before this revision have no row and keep being rendered from the live store.

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-02 10:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0024'
down_revision: Union[str, None] = '0022'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('issue_record',
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('frozen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('view', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issue.id'], name=op.f('fk_issue_record_issue_id_issue'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('issue_id', name=op.f('pk_issue_record'))
    )


def downgrade() -> None:
    op.drop_table('issue_record')
