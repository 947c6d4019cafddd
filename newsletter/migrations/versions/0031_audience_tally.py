"""audience_tally: readers joined and left per 15 minutes, kept by triggers (issue 18 point 4)

The statistics' "readers joined and left per week" counted consent events over eight weeks on
every view (0.5-1.1 s at a million readers). Here every consent event of a counted kind adds one
to its 15-minute slot (epoch seconds // 900), on insert, and takes it off on delete (a forgotten
reader's history goes by ON DELETE CASCADE) or on an update that moves it. A week on any site's
calendar starts at a multiple of 15 minutes (every time zone's offset is), so a week is a sum of
whole slots, exactly the count over the events (newsletter/reports/audience.py reads them).

Why triggers, on both databases: consent events are written by the web, the API, the CLI, row and
bulk imports (COPY), the demo and the tests; a trigger counts every one of them, with no write
path to forget. PostgreSQL: one statement-level trigger per operation, over its transition table,
so a bulk import's million rows cost one grouped upsert, not a million; each backend writes its
own shard (backend pid mod 16), so concurrent unsubscribes do not queue on one row. SQLite: a row
trigger, only for the counted kinds (one writer at a time: one shard).

The kinds are those of newsletter/audience_tally.py (JOINED, LEFT), frozen here: a migration
must mean the same thing whenever it runs. Filled from the events already on record.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03 08:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0031'
down_revision: Union[str, None] = '0030'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COUNTED = "('confirmed', 'subscribed', 'unsubscribed')"
SIDE = "CASE WHEN kind = 'unsubscribed' THEN 'left' ELSE 'joined' END"
PG_SLOT = "floor(extract(epoch FROM created_at) / 900)::bigint"
# SQLite: the stored text to the whole second (strftime would round .999999 up to the next one).
SQLITE_SLOT = "CAST(strftime('%s', substr({row}created_at, 1, 19)) AS INTEGER) / 900"


def _pg_upsert(rows: str, sign: str) -> str:
    return (f"INSERT INTO audience_tally (slot, side, shard, n) "
            f"SELECT {PG_SLOT}, {SIDE}, mod(pg_backend_pid(), 16), {sign}count(*) FROM {rows} "
            f"WHERE kind IN {COUNTED} GROUP BY 1, 2 ORDER BY 1, 2 "
            "ON CONFLICT (slot, side, shard) DO UPDATE SET n = audience_tally.n + excluded.n;")


PG_FUNCTION = f"""
CREATE FUNCTION audience_tally_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {_pg_upsert('new_rows', '')}
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    {_pg_upsert('old_rows', '-')}
  END IF;
  RETURN NULL;
END
$$
"""
PG_TRIGGERS = {
    "insert": "AFTER INSERT ON consent_event REFERENCING NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON consent_event REFERENCING OLD TABLE AS old_rows",
    "update": "AFTER UPDATE ON consent_event REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
}


def _sqlite_upsert(row: str, delta: int) -> str:
    """The slot of `row` (NEW or OLD) moves by `delta` if its kind is counted (an update from or to
    a kind not counted changes one side only). The WHERE also tells SQLite's parser that ON
    CONFLICT belongs to the INSERT, not to the SELECT."""
    return (f"INSERT INTO audience_tally (slot, side, shard, n) "
            f"SELECT {SQLITE_SLOT.format(row=row + '.')}, {SIDE.replace('kind', row + '.kind')}, 0, {delta} "
            f"WHERE {row}.kind IN {COUNTED} ON CONFLICT (slot, side, shard) DO UPDATE SET n = n + excluded.n;")


SQLITE_TRIGGERS = {
    "insert": (f"AFTER INSERT ON consent_event WHEN NEW.kind IN {COUNTED}", [("NEW", 1)]),
    "delete": (f"AFTER DELETE ON consent_event WHEN OLD.kind IN {COUNTED}", [("OLD", -1)]),
    "update": (f"AFTER UPDATE OF kind, created_at ON consent_event WHEN OLD.kind IN {COUNTED} "
               f"OR NEW.kind IN {COUNTED}", [("OLD", -1), ("NEW", 1)]),
}


def upgrade() -> None:
    op.create_table('audience_tally',
    sa.Column('slot', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('side', sa.Text(), nullable=False),
    sa.Column('shard', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('n', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('slot', 'side', 'shard', name=op.f('pk_audience_tally'))
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for name, when in PG_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER audience_tally_{name} {when} FOR EACH STATEMENT "
                       "EXECUTE FUNCTION audience_tally_count()")
        slot = PG_SLOT
    else:
        for name, (when, rows) in SQLITE_TRIGGERS.items():
            body = " ".join(_sqlite_upsert(row, delta) for row, delta in rows)
            op.execute(f"CREATE TRIGGER audience_tally_{name} {when} BEGIN {body} END")
        slot = SQLITE_SLOT.format(row="")
    op.execute(f"INSERT INTO audience_tally (slot, side, shard, n) SELECT {slot}, {SIDE}, 0, count(*) "
               f"FROM consent_event WHERE kind IN {COUNTED} GROUP BY 1, 2")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER audience_tally_{name} ON consent_event")
        op.execute("DROP FUNCTION audience_tally_count()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER audience_tally_{name}")
    op.drop_table('audience_tally')
