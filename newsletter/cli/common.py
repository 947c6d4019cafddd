"""What every command module shares: the typer apps, the consoles and the lazily loaded State.

Nothing heavy is imported here (no pydantic, SQLAlchemy or SQLModel): `newsletter --help`
loads this module and the command modules only, and each command imports what it needs when
it runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from newsletter.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from newsletter.config import Settings

# soft_wrap: messages keep their lines (paths, URLs) instead of being cut at the terminal width.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

app = typer.Typer(help="Weekly Verdicts: a self-hosted weekly newsletter pipeline.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
content_app = typer.Typer(help="Comparisons: import from files, pull from the site's feed, history of revisions.", no_args_is_help=True)
issue_app = typer.Typer(help="Issues: draft, list, preview and send.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Subscribers: import, export, forget, purge-unconfirmed.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(content_app, name="content")
app.add_typer(issue_app, name="issue")
app.add_typer(subscribers_app, name="subscribers")
bounces_app = typer.Typer(help="Bounce mailbox: bounce reports, attributed by VERP or Message-ID (docs/webhooks.md).",
                          no_args_is_help=True)
app.add_typer(bounces_app, name="bounces")


@dataclass
class State:
    """The global options of one invocation; settings and engine are made on first use only."""

    config: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from newsletter.config import load_settings

            self._settings = load_settings(self.config)
        return self._settings

    def engine(self, migrated: bool = True) -> Engine:
        from newsletter.db import get_engine

        engine = get_engine(self.settings.database.url)
        if migrated:
            from newsletter.migrate import is_current

            if not is_current(engine):
                raise UserError(
                    f"the database ({engine.url.render_as_string(hide_password=True)}) is not at the "
                    "current schema: run `newsletter db upgrade`"
                )
        return engine


state = State()


@app.callback()
def _root(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Config file (default: NEWSLETTER_CONFIG, ./config.toml, or the embedded defaults).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    state.config = config
    state._settings = None
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
