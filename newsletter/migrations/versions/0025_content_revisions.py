"""content_revision, content_feed, comparison.checked_at: verdicts keep their history (issue 17.1, 17.6)

- comparison.checked_at: when its facts were last checked; existing rows take updated_at.
- content_revision: one snapshot per change of a comparison (its text, tools' facts, reviews,
  checked_at, unpublished_at), numbered per comparison. Each existing comparison gets revision 1
  (source "migration"), so the first change made after this upgrade has a "before" to diff with.
  The snapshot is built here in the same shape as newsletter/content/snapshot.py builds it.
- content_feed: the ETag / Last-Modified of the last good pull of [content] feed_url.

Revision ID: 0025
Revises: 0020
Create Date: 2026-12-02 13:30:00
"""
from datetime import UTC, datetime
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0025'
down_revision: Union[str, None] = '0026'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LENSES = ["developer_experience", "competition", "thesis", "buyer"]
TOOL_FIELDS = ("slug", "name", "category", "tagline", "description", "entry_price")


def upgrade() -> None:
    string = sqlmodel.sql.sqltypes.AutoString
    moment = sqlmodel.sql.sqltypes.UTCDateTime
    with op.batch_alter_table('comparison') as batch_op:
        batch_op.add_column(sa.Column('checked_at', moment(), nullable=True))
    op.execute("UPDATE comparison SET checked_at = updated_at")
    with op.batch_alter_table('comparison') as batch_op:
        batch_op.alter_column('checked_at', existing_type=moment(), nullable=False)
    op.create_table('content_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('comparison_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('source', string(length=16), nullable=False),
    sa.Column('actor', string(length=300), nullable=False),
    sa.Column('created_at', moment(), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['comparison_id'], ['comparison.id'],
                            name=op.f('fk_content_revision_comparison_id_comparison'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_content_revision')),
    sa.UniqueConstraint('comparison_id', 'number', name=op.f('uq_content_revision_comparison_id_number')),
    sqlite_autoincrement=True
    )
    op.create_table('content_feed',
    sa.Column('url', string(length=2000), nullable=False),
    sa.Column('etag', string(length=300), nullable=True),
    sa.Column('last_modified', string(length=100), nullable=True),
    sa.Column('fetched_at', moment(), nullable=False),
    sa.PrimaryKeyConstraint('url', name=op.f('pk_content_feed'))
    )
    _baseline(op.get_bind())


def _baseline(bind) -> None:
    """Revision 1 of every comparison as it is now (the shape of content/snapshot.py)."""
    meta = sa.MetaData()
    moment = sqlmodel.sql.sqltypes.UTCDateTime
    comparison = sa.Table('comparison', meta, sa.Column('id', sa.Integer), sa.Column('slug', sa.String),
                          sa.Column('title', sa.String), sa.Column('dek', sa.Text), sa.Column('category', sa.String),
                          sa.Column('published_at', moment()), sa.Column('checked_at', moment()),
                          sa.Column('unpublished_at', moment()))
    tool = sa.Table('tool', meta, sa.Column('id', sa.Integer), *(sa.Column(name, sa.String) for name in TOOL_FIELDS))
    link = sa.Table('comparison_tool', meta, sa.Column('comparison_id', sa.Integer), sa.Column('tool_id', sa.Integer),
                    sa.Column('position', sa.Integer))
    review = sa.Table('review', meta, sa.Column('comparison_id', sa.Integer), sa.Column('tool_id', sa.Integer),
                      sa.Column('lens', sa.String), sa.Column('reviewer', sa.String), sa.Column('verdict', sa.String),
                      sa.Column('quote', sa.Text))
    revision_table = sa.Table('content_revision', meta, sa.Column('comparison_id', sa.Integer),
                              sa.Column('number', sa.Integer), sa.Column('source', sa.String),
                              sa.Column('actor', sa.String), sa.Column('created_at', moment()),
                              sa.Column('snapshot', sa.JSON))
    now = datetime.now(UTC)
    rows = []
    for c in bind.execute(sa.select(comparison).order_by(comparison.c.id)).mappings():
        tools = bind.execute(sa.select(tool).join(link, link.c.tool_id == tool.c.id)
                             .where(link.c.comparison_id == c['id']).order_by(link.c.position)).mappings().all()
        position = {t['id']: n for n, t in enumerate(tools)}
        slugs = {t['id']: t['slug'] for t in tools}
        reviews = sorted(bind.execute(sa.select(review).where(review.c.comparison_id == c['id'])).mappings().all(),
                         key=lambda r: (position.get(r['tool_id'], 99),
                                        LENSES.index(r['lens']) if r['lens'] in LENSES else 99))
        snapshot = {
            "slug": c['slug'], "title": c['title'], "dek": c['dek'], "published": c['published_at'].isoformat(),
            "category": c['category'], "tools": [{name: t[name] for name in TOOL_FIELDS} for t in tools],
            "reviews": [{"tool": slugs[r['tool_id']], "lens": r['lens'], "reviewer": r['reviewer'],
                         "verdict": r['verdict'], "quote": r['quote']} for r in reviews if r['tool_id'] in slugs],
            "checked_at": c['checked_at'].isoformat(),
            "unpublished_at": c['unpublished_at'].isoformat() if c['unpublished_at'] else None,
        }
        rows.append({"comparison_id": c['id'], "number": 1, "source": "migration", "actor": "migration",
                     "created_at": now, "snapshot": snapshot})
    if rows:
        bind.execute(revision_table.insert(), rows)


def downgrade() -> None:
    op.drop_table('content_feed')
    op.drop_table('content_revision')
    with op.batch_alter_table('comparison') as batch_op:
        batch_op.drop_column('checked_at')
