"""issue.scheduled_ignoring: the failing checks an editor overrode when scheduling

`issue schedule --ignore-checks` (and the console's and the API's ignore_checks) scheduled the
issue, and at the send time the scheduler ran the checks again and put it back to draft for the
very failures the editor had accepted. The names of those checks are now kept with the schedule;
the scheduler lets exactly these pass. Issues scheduled before keep none (as they were checked).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-05 23:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0035'
down_revision: Union[str, None] = '0034'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('issue') as batch:
        batch.add_column(sa.Column('scheduled_ignoring', sa.String(length=200), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('issue') as batch:
        batch.drop_column('scheduled_ignoring')
