"""expired signups: hashed address and confirmation times of purged, never-confirmed signups

Revision ID: 0010
Revises: 0007
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('expired_signup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_hash', sqlmodel.sql.sqltypes.AutoString(length=71), nullable=False),
    sa.Column('mailed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('purged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_expired_signup'))
    )
    with op.batch_alter_table('expired_signup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_expired_signup_email_hash'), ['email_hash'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('expired_signup', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_expired_signup_email_hash'))
    op.drop_table('expired_signup')
