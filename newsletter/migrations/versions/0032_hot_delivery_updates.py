"""delivery rows updated in place (HOT): no index names `state`, room on every page

Each message moves its `delivery` row twice (the claim: queued -> sending; the result: sending ->
sent/retry/failed). PostgreSQL can update a row in place, on its page and without a new entry in
any index (a HOT update), only when no index names a column the update changes, in its key or in
its WHERE, and when the new version fits on the row's page. `ix_delivery_issue_state` (issue_id,
state) and the partial `ix_delivery_due` (WHERE state IN pending) both name `state`, so every
claim and every result wrote a new entry into each of the table's five indexes: ~9 index writes
per message, a third of the backends' CPU per message at a million readers.

- `ix_delivery_due` and `ix_delivery_issue_state` go; `ix_delivery_issue_id` (issue_id, id), over
  columns no update changes, takes their place: a claim walks an issue's rows in id order from
  its cursor (claim_batch.ClaimCursor) and checks the state on the row it reads; the figures that
  counted rows by state read the issue's counters (newsletter/tallies.py) instead.
- PostgreSQL: fillfactor FILLFACTOR on `delivery`: an enqueue fills each page only that far, so
  the versions the claim and the result write fit on the page they replace (a claim takes a run
  of consecutive ids: every row of a page at once). Pages written before keep their fill.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-03 14:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0032'
down_revision: Union[str, None] = '0031'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Written out rather than imported: a migration must keep meaning what it meant when written.
PENDING = "state IN ('queued', 'sending', 'retry')"
FILLFACTOR = 20


def upgrade() -> None:
    op.create_index('ix_delivery_issue_id', 'delivery', ['issue_id', 'id'], unique=False)
    op.drop_index('ix_delivery_due', table_name='delivery')
    op.drop_index('ix_delivery_issue_state', table_name='delivery')
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE delivery SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE delivery RESET (fillfactor)")
    op.create_index('ix_delivery_issue_state', 'delivery', ['issue_id', 'state'], unique=False)
    op.create_index('ix_delivery_due', 'delivery', ['issue_id', 'id'], unique=False,
                    postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
    op.drop_index('ix_delivery_issue_id', table_name='delivery')
