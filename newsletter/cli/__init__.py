"""`newsletter`: the command line for operators and editors.

The commands live in modules by concern: data (db, content, demo), issue, audience
(subscribers, bounces), editors (editors, tokens), followup and roles (serve, worker, scheduler, run, stats); they share the
typer apps and the State of newsletter.cli.common. Importing them here registers them, in
the order `--help` lists them. Each command imports its machinery when it runs, so that
`newsletter --help` does not load pydantic, SQLAlchemy or FastAPI.
"""

from __future__ import annotations

import sys

from newsletter.cli import roles  # noqa: F401  (registers stats, scheduler, run, worker, serve)
from newsletter.cli import data  # noqa: F401  (registers demo, db, content import)
from newsletter.cli import content  # noqa: F401  (content history, checked, pull)
from newsletter.cli import issue  # noqa: F401
from newsletter.cli import audience  # noqa: F401  (subscribers, bounces)
from newsletter.cli import editors  # noqa: F401  (editors, tokens)
from newsletter.cli import followup  # noqa: F401  (followup create/preview/list/status/send/cancel)
from newsletter.cli.common import State, app, console, err, state
from newsletter.errors import UserError

__all__ = ["State", "app", "console", "err", "main", "state"]


def main() -> None:
    """The console script: a UserError or an unreachable database is one red line, not a stack trace."""
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        sys.exit(1)
    except Exception as exc:
        from sqlalchemy.exc import OperationalError  # only when something failed: keeps --help fast

        if not isinstance(exc, OperationalError):
            raise
        err.print(f"error: database: {exc.orig}", style="red", markup=False, highlight=False)
        sys.exit(1)
