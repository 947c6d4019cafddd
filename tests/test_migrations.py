from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import newsletter.models  # noqa: F401
from newsletter.db import make_engine
from newsletter.subscribers.models import modelled
from newsletter.migrate import current_revision, downgrade, head_revision, is_current, upgrade


def test_migrations_match_the_models_and_round_trip(db_url):
    engine = make_engine(db_url)
    assert not is_current(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True,
                                                                        "include_object": modelled}),
                                SQLModel.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    tables = set(inspect(engine).get_table_names())
    assert {"tool", "comparison", "comparison_tool", "review", "vote", "subscriber", "consent_event",
            "suppression", "issue", "issue_item", "delivery"} <= tables
    upgrade(engine)  # a second upgrade is a no-op
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
