"""Jinja2 environment for mail and web templates.

Undefined variables are errors (StrictUndefined) and every template error is
reported with the template's name and line, so a mistake surfaces when an
issue is drafted or previewed, never halfway through a send.

The shipped templates are found with the code (`newsletter.shipped`); an
operator's folder (`[site] templates_dir`) is searched first, so an operator
overrides a single template or partial by giving a file of the same name and
keeps the shipped rest, upgrades included.
"""

from __future__ import annotations

import hashlib
import os
import textwrap
from functools import lru_cache
from pathlib import Path

import jinja2
import jinja2.bccache
from markupsafe import Markup

from newsletter import shipped
from newsletter.config import operator_templates, template_cache, use_operator_templates
from newsletter.errors import UserError
from newsletter.mail.palette import DARK, LIGHT

TEMPLATES = shipped("templates")


class TemplateError(UserError):
    """A template is broken; the message names the template and the line."""


def wrap(text: str, width: int = 78, indent: str = "") -> str:
    """Fold prose for the plain-text part; long words (URLs) are never split."""
    return "\n".join(
        textwrap.fill(paragraph, width=width, initial_indent=indent, subsequent_indent=indent,
                      break_long_words=False, break_on_hyphens=False)
        for paragraph in str(text).split("\n")
    )


def _autoescape(name: str | None) -> bool:
    return bool(name) and name.endswith((".html.j2", ".mjml.j2", ".html"))


def searched(folder: Path = TEMPLATES) -> tuple[Path, ...]:
    """The folders a template name is looked up in, first match wins."""
    operator = operator_templates()
    return (operator, folder) if operator else (folder,)


def environment(folder: Path = TEMPLATES) -> jinja2.Environment:
    """The environment for `folder`, with the operator's folder (if any) searched first."""
    return _environment(searched(folder), template_cache())


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled templates kept on disk between processes. Every one-shot command that
    renders (`issue send`'s pre-send checks, `issue preview`), each `serve` and each worker start
    compiled the same templates from source: ~50 ms of CPU each time.

    A file is keyed by template and path and checked against the source's checksum (an edited
    template is compiled again); its name also carries a fingerprint of Jinja's version and of
    this module (the environment's options, autoescape included, are compiled into the code), so
    an upgrade never runs code compiled under other rules. The folder is Jinja's own per-user one
    (`<tmp>/_jinja2-cache-<uid>`, mode 0700, ownership checked): what is in it runs in every
    process, so it is as trusted as the user's own files ([site] template_cache = false: none).
    A cache can only ever save work: a file that cannot be read, or that is damaged, is removed
    and the template compiled from source; one that cannot be written is passed over."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - a damaged file: Jinja unpickles its checksum unguarded
            bucket.reset()
            try:
                os.remove(self._get_cache_filename(bucket))
            except OSError:
                pass

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


@lru_cache(maxsize=1)
def _fingerprint() -> str:
    """Jinja's version and this module's source: what decides how a template compiles."""
    digest = hashlib.sha256(jinja2.__version__.encode())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def _bytecode_cache(enabled: bool = True) -> jinja2.BytecodeCache | None:
    """The on-disk cache, or None when turned off or where no safe folder can be had (no
    writable temp folder, or the name taken by another user's folder or a file)."""
    if not enabled:
        return None
    try:
        return _BytecodeCache(pattern=f"__wv_{_fingerprint()}_%s.cache")
    except (OSError, RuntimeError):
        return None


@lru_cache(maxsize=4)
def _environment(folders: tuple[Path, ...], cached: bool = True) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(path)) for path in folders]),
        bytecode_cache=_bytecode_cache(cached),
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    env.globals.update(light=LIGHT, dark=DARK)  # one palette for mail and pages (newsletter/mail/palette.py)
    # The same as CSS custom properties, escaped once here: the page macro that escaped each name and
    # value on every render was 13% of a signup's CPU (issue 18; templates/web/base.html).
    env.globals.update(light_vars=colour_vars(LIGHT), dark_vars=colour_vars(DARK))
    return env


def colour_vars(colours: dict[str, str]) -> Markup:
    """`--name:value; ` for each colour, escaped: the body of a CSS rule (web pages' <style>)."""
    return Markup("".join(Markup("--{}:{}; ").format(name, value) for name, value in colours.items()))


def _template_line(exc: BaseException) -> tuple[str | None, int | None]:
    """Find the innermost template frame in a Jinja traceback."""
    name, line = None, None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2") or filename.endswith(".html"):
            name, line = filename, tb.tb_lineno
        tb = tb.tb_next
    return name, line


def render(name: str, context: dict, folder: Path = TEMPLATES) -> str:
    """Render a template; any error becomes a TemplateError naming template and line."""
    try:
        return environment(folder).get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise TemplateError(f"template {_relative(where, folder)}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        where = " or ".join(str(path) for path in searched(folder))
        raise TemplateError(f"template {exc.name} not found in {where}") from None
    except Exception as exc:  # undefined variables, bad filters, type errors in expressions
        where, line = _template_line(exc)
        where = _relative(where or name, folder)
        raise TemplateError(f"template {where}, line {line or '?'}: {exc}") from None


def _relative(path: str, folder: Path) -> str:
    """The template's name inside the shipped folder; an operator's template keeps its full path."""
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return path


__all__ = ["TEMPLATES", "Markup", "TemplateError", "environment", "render", "searched", "use_operator_templates",
           "wrap"]
