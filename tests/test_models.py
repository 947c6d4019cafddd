"""newsletter.models is the one import that makes SQLModel.metadata complete: it must name every table."""

import importlib
import pkgutil

from sqlmodel import SQLModel

import newsletter
import newsletter.models as models


def _import_every_module() -> None:
    """So a table defined in a module that newsletter.models forgets is registered all the same."""
    for package in (newsletter,):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__") or ".migrations" in info.name:  # runs the CLI / Alembic
                continue
            importlib.import_module(info.name)


def test_newsletter_models_exports_every_table():
    _import_every_module()
    tables = {mapper.class_ for mapper in SQLModel._sa_registry.mappers if mapper.local_table is not None}
    tables = {table for table in tables if table.__module__.startswith("newsletter.")}
    exported = {getattr(models, name) for name in models.__all__}
    assert tables, "no tables found"
    assert sorted(t.__name__ for t in tables - exported) == []
    assert all(getattr(table, "__table__", None) is not None for table in exported)  # tables only
