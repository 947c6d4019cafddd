"""Migration 0015 (webhook_event.payload) on SQLite: batch mode may rebuild the table, and a
rebuild without AUTOINCREMENT would let a deleted event's id be handed out again (0009)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from newsletter.db import make_engine
from newsletter.migrate import downgrade, upgrade


def _table_sql(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'webhook_event'")).scalar_one()


def test_the_payload_column_comes_and_goes_and_ids_stay_never_reused(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    assert "payload" in {column["name"] for column in inspect(engine).get_columns("webhook_event")}
    assert "AUTOINCREMENT" in _table_sql(engine)
    downgrade(engine, "0010")
    assert "payload" not in {column["name"] for column in inspect(engine).get_columns("webhook_event")}
    assert "AUTOINCREMENT" in _table_sql(engine)
    upgrade(engine)
    assert "AUTOINCREMENT" in _table_sql(engine) and "payload" in _table_sql(engine)
    engine.dispose()
