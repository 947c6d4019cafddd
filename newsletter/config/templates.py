"""The operator's template folder of this process ([site] templates_dir)."""

from __future__ import annotations

from pathlib import Path

_operator_templates: Path | None = None  # this process's [site] templates_dir


def use_operator_templates(folder: Path | None) -> None:
    """Search `folder` before the shipped templates from now on in this process (None: none).

    A process setting rather than an argument: one process serves one configuration, and
    load_settings() sets it (worker processes from pickled settings call this themselves), so
    every caller of templating.render() gets it without passing it along. It lives here, not in
    templating, so that config imports nothing that renders (templating reads it).
    """
    global _operator_templates
    _operator_templates = folder


def operator_templates() -> Path | None:
    """The operator's template folder of this process, if any (see use_operator_templates)."""
    return _operator_templates
