"""Ship the repository's top-level `templates/` and `config.toml` inside the wheel.

The design card keeps both at the top of the repository, where an operator finds them. An
installed package has no repository around it, so the build copies them into the package as
`newsletter/_data/`, where `newsletter.shipped()` finds them through importlib.resources.
An editable install skips the copy and reads the originals, so an edit shows at once.
Everything else about the build is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("templates", "config.toml")  # top-level names, copied as newsletter/_data/<name>
TARGET = Path("newsletter", "_data")


class BuildWithShippedData(build_py):
    """build_py that also copies SHIPPED into the built package (and lists them for the sdist)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the editable finder serves the checkout, originals included
            return
        for name in SHIPPED:
            source, target = Path(name), Path(self.build_lib) / TARGET / name
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def get_source_files(self) -> list[str]:
        """The sdist takes its file list from here: without these, a wheel built from it would lack them."""
        files = [str(path) for name in SHIPPED for path in _files(Path(name))]
        return super().get_source_files() + files


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return [path]


setup(cmdclass={"build_py": BuildWithShippedData})
