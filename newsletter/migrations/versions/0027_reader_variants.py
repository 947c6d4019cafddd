"""Per-reader issues (issue 17 points 3, 4, 8): the variant each delivery carried, the "Verdicts
that changed" frozen with an issue, the editor's "subject follows the reader" flag, and the latest
issue sent once to a new reader.

- delivery.variant_mask: which of the issue's comparisons the reader was sent (bit i: the i-th by
  position), fixed at enqueue from their topics; NULL: all of them (every row sent before this).
- issue_record.changed: the material verdict changes since earlier issues, frozen with the view.
- issue.subject_follows_reader: the subject and preheader follow the reader's first comparison.
- transactional_mail: at most one `latest` (onboarding) mail per reader, a partial unique index.

Revision ID: 0027
Revises: 0020
Create Date: 2026-12-02 13:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0027'
down_revision: Union[str, None] = '0025'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LATEST = sa.text("kind = 'latest'")


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: on SQLite a batch rebuild of `issue` or `delivery` would
    # drop their AUTOINCREMENT (ids never reused, tests/web/test_identities.py).
    op.add_column('delivery', sa.Column('variant_mask', sa.BigInteger(), nullable=True))
    op.add_column('issue_record', sa.Column('changed', sa.JSON(), nullable=True))
    op.add_column('issue', sa.Column('subject_follows_reader', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.create_index('uq_transactional_mail_latest', 'transactional_mail', ['subscriber_id'], unique=True,
                    sqlite_where=LATEST, postgresql_where=LATEST)


def downgrade() -> None:
    op.drop_index('uq_transactional_mail_latest', table_name='transactional_mail')
    with op.batch_alter_table('issue') as batch:
        batch.drop_column('subject_follows_reader')
    with op.batch_alter_table('issue_record') as batch:
        batch.drop_column('changed')
    with op.batch_alter_table('delivery') as batch:
        batch.drop_column('variant_mask')
