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
from typer.core import TyperGroup

from newsletter.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from newsletter.config import Settings

# soft_wrap: messages keep their lines (paths, URLs) instead of being cut at the terminal width.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)



class _AsGiven:
    """Typer's per-parameter coercion (duck-typed: its `coerce`) for a value click already has right:
    the flag's bool or None, or --config's path."""

    def __init__(self, convert=None) -> None:
        self.convert = convert

    def coerce(self, value: object, param: object = None, ctx: object = None) -> object:
        return value if value is None or self.convert is None else self.convert(value)


def _as_given(param, convert=None):
    if param is not None and getattr(param, "_runtime_param", "") is None:
        param._runtime_param = _AsGiven(convert)
    return param


_PLAIN = {int: "integer", float: "number", str: "text", Path: "path"}


class _Plain(_AsGiven):
    """Typer's coercion of a command's int, float, str or Path parameter without pydantic: a
    TypeAdapter per parameter made `newsletter stats` import typer's adapters and build them,
    ~0.1 s of CPU of a command whose work takes 0.04 s (issue 18). Same verdicts: the value as
    given when it already has the type (a default), else the type made from the text."""

    def __init__(self, convert, low: float | None = None, high: float | None = None) -> None:
        super().__init__(convert)
        self.low, self.high = low, high  # the option's min= and max=, which typer's coercion checked

    def coerce(self, value: object, param: object = None, ctx: object = None) -> object:
        kind = self.convert
        if value is None or isinstance(value, kind):
            return self._in_range(value, param, ctx)
        try:
            made = kind(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{value!r} is not a valid {_PLAIN[kind]}.", ctx=ctx, param=param) from None
        return self._in_range(made, param, ctx)

    def _in_range(self, value, param, ctx):
        """`worker --processes 0` once started, past its help's [1<=x<=64]: the range is checked here too."""
        if value is None or (self.low is None or value >= self.low) and (self.high is None or value <= self.high):
            return value
        bounds = f"{'' if self.low is None else f'{self.low}<='}x{'' if self.high is None else f'<={self.high}'}"
        raise typer.BadParameter(f"{value} is not in the range {bounds}.", ctx=ctx, param=param)


def _plain(param) -> None:
    """A command parameter of one plain value (not a list, file, choice or callback-typed one)."""
    descriptor = getattr(param, "type_descriptor", None)
    if (descriptor is not None and descriptor.annotation in _PLAIN and descriptor.file_annotation is None
            and not param.multiple and param.nargs == 1 and getattr(param, "_runtime_param", "") is None):
        param._runtime_param = _Plain(descriptor.annotation, getattr(param, "min", None), getattr(param, "max", None))


def _quick_help(made):
    """A command's --help option (None unless given, so typer would coerce it through pydantic),
    taken as given like a group's."""
    return lambda ctx: _as_given(made(ctx))


class QuickGroup(TyperGroup):
    """Every `newsletter` group. `newsletter GROUP --help` parses the options of each group above
    it, and typer coerces an option through a pydantic TypeAdapter built on first use unless it is
    a flag already holding a bool: a group's own --help (None when not given) and the root's
    --config (a plain path) imported pydantic, a quarter of the CPU of every group's --help
    (issue 18). Those two take their value as given instead. Should a typer release rename the
    hook, they fall back to typer's coercion (slower, still right) and tests/cli/test_startup.py
    fails on pydantic being imported."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name == "config":
                _as_given(param, lambda value: Path(str(value)))
        for command in self.commands.values():
            if not isinstance(command, TyperGroup):  # a group is a QuickGroup: it sees to its own
                for param in command.params:
                    _plain(param)
                command.get_help_option = _quick_help(command.get_help_option)

    def get_help_option(self, ctx):
        return _as_given(super().get_help_option(ctx))


def group(help: str) -> typer.Typer:
    """A command group whose --help loads nothing heavy (QuickGroup)."""
    return typer.Typer(help=help, no_args_is_help=True, cls=QuickGroup)


app = typer.Typer(help="Weekly Verdicts: a self-hosted weekly newsletter pipeline.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, cls=QuickGroup)
db_app = group(help="Database schema (Alembic migrations).")
content_app = group(help="Comparisons: import from files, pull from the site's feed, history of revisions.")
issue_app = group(help="Issues: draft, list, preview and send.")
subscribers_app = group(help="Subscribers: import, export, forget, purge-unconfirmed.")
app.add_typer(db_app, name="db")
app.add_typer(content_app, name="content")
app.add_typer(issue_app, name="issue")
app.add_typer(subscribers_app, name="subscribers")
bounces_app = group(help="Bounce mailbox: bounce reports, attributed by VERP or Message-ID (docs/webhooks.md).")
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
        from newsletter.engine import get_engine

        if migrated:
            _sqlite_file_exists(self.settings.database.url)
        engine = get_engine(self.settings.database.url)
        if migrated:
            from newsletter.migrate import is_current

            if not is_current(engine):
                raise UserError(
                    f"the database ({engine.url.render_as_string(hide_password=True)}) is not at the "
                    "current schema: run `newsletter db upgrade`"
                )
        return engine


def _sqlite_file_exists(url: str) -> None:
    """A command that needs the store, run where there is none (another folder, a mistyped path):
    say so, instead of creating an empty database file there and calling it out of date."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return
    if not Path(parsed.database).exists():
        raise UserError(f"no database at {parsed.database}: run this in the folder of your config.toml (or give "
                        "--config), or create one with `newsletter db upgrade` (`newsletter demo` sets up a sample)")


state = State()


@app.callback()
def _root(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Config file (default: NEWSLETTER_CONFIG, ./config.toml, or the embedded defaults).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    state.config = config
    state._settings = None
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
