"""The database schema, content import and the demo: the commands that set a store up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import app, console, content_app, db_app, state

# --- db -----------------------------------------------------------------------------------------

@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create or migrate the database schema to the latest revision."""
    from newsletter.migrate import current_revision, upgrade

    engine = state.engine(migrated=False)
    upgrade(engine, revision)
    console.print(f"database at revision {current_revision(engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database."""
    from newsletter.migrate import current_revision, head_revision

    engine = state.engine(migrated=False)
    console.print(f"current: {current_revision(engine) or '(empty)'}  latest: {head_revision(engine)}")


# --- content ------------------------------------------------------------------------------------

@content_app.command("import")
def content_import(files: Annotated[list[Path], typer.Argument(help="JSON or TOML files (docs/content-format.md).")]) -> None:
    """Import comparisons; a comparison with a known slug is updated, never duplicated."""
    from newsletter.content.importer import import_files

    for result in import_files(state.engine(), files):
        console.print(f"{result.path}: {result.created} new, {result.updated} updated, {result.unchanged} unchanged")


@app.command("demo")
def demo() -> None:
    """Run the weekly pipeline once on the configured store and transport (safe to repeat)."""
    from newsletter.demo import run_demo

    run_demo(state.settings, echo=lambda line: console.print(line, markup=False, highlight=False))
