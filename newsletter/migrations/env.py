"""Alembic environment: runs against the engine that newsletter.migrate passes in."""

from alembic import context
from sqlmodel import SQLModel

import newsletter.models  # noqa: F401  (fills SQLModel.metadata)
from newsletter.subscribers.models import modelled

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from newsletter.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=modelled,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `newsletter db upgrade`")
run_migrations_online()
