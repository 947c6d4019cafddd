"""import_job: CSV imports of readers run in the background (issue 16, readers import)

A new table only. The uploaded file is kept in the row (`data`) until the import finishes, so a
job survives the request and the process that took it.

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-02 10:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0020'
down_revision: Union[str, None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    string = sqlmodel.sql.sqltypes.AutoString
    moment = sqlmodel.sql.sqltypes.UTCDateTime
    op.create_table('import_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('state', string(length=16), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('skip_bad_rows', sa.Boolean(), nullable=False),
    sa.Column('platform', string(length=16), nullable=False),
    sa.Column('mapping', sa.Text(), nullable=False),
    sa.Column('filename', string(length=200), nullable=False),
    sa.Column('encoding', string(length=40), nullable=False),
    sa.Column('delimiter', string(length=4), nullable=False),
    sa.Column('data', sa.Text(), nullable=True),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('suppressed', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_by', string(length=300), nullable=False),
    sa.Column('created_at', moment(), nullable=False),
    sa.Column('started_at', moment(), nullable=True),
    sa.Column('finished_at', moment(), nullable=True),
    sa.Column('heartbeat_at', moment(), nullable=True),
    sa.Column('worker', string(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_job')),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_import_job_state'), 'import_job', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_import_job_state'), table_name='import_job')
    op.drop_table('import_job')
