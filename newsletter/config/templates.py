"""The operator's template folder of this process ([site] templates_dir)."""

from __future__ import annotations

from pathlib import Path

_operator_templates: Path | None = None  # this process's [site] templates_dir
_template_cache = True  # this process's [site] template_cache


def use_operator_templates(folder: Path | None, cache: bool = True) -> None:
    """Search `folder` before the shipped templates from now on in this process (None: none);
    `cache`: keep compiled templates on disk between processes ([site] template_cache).

    A process setting rather than an argument: one process serves one configuration, and
    load_settings() sets it (worker processes from pickled settings call this themselves), so
    every caller of templating.render() gets it without passing it along. It lives here, not in
    templating, so that config imports nothing that renders (templating reads it).
    """
    global _operator_templates, _template_cache
    _operator_templates, _template_cache = folder, cache


def operator_templates() -> Path | None:
    """The operator's template folder of this process, if any (see use_operator_templates)."""
    return _operator_templates


def template_cache() -> bool:
    """Whether this process keeps compiled templates on disk (see use_operator_templates)."""
    return _template_cache
