"""`newsletter content import`: read comparison files and upsert them by slug.

A file is validated whole before anything is written, and written in one
transaction, so a bad file imports nothing and a re-import updates in place.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Engine, delete
from sqlmodel import Session, select

from newsletter.content.models import Comparison, ComparisonTool, Review, Tool
from newsletter.content.schema import ComparisonIn, ContentFile, ToolIn
from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError
from newsletter.files import read_text_limited


class ImportError_(UserError):
    """A content file is unreadable or invalid; the message names file, field and reason."""


@dataclass
class ImportResult:
    path: Path
    created: int = 0
    updated: int = 0


def _finite(text: str) -> float:
    """JSON 1e999999 and TOML inf would be infinity: refused like any other bad value."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]!r} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _parse(path: Path, text: str) -> object:
    """TOML or JSON by suffix; deep nesting and huge numbers are errors naming the file."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ImportError_(f"{path}: unknown file type {suffix!r} (use .toml or .json)")
    kind = suffix[1:].upper()
    try:
        if suffix == ".toml":
            return tomllib.loads(text, parse_float=_finite)
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise ImportError_(f"{path}: not valid {kind}: nested too deeply") from None
    except ValueError as exc:  # also TOMLDecodeError, JSONDecodeError, integers with too many digits
        raise ImportError_(f"{path}: not valid {kind}: {' '.join(str(exc).split())[:200]}") from None


def _read(path: Path) -> object:
    try:
        text = read_text_limited(path)
    except UserError as exc:
        raise ImportError_(str(exc)) from None
    data = _parse(path, text)
    if path.suffix.lower() == ".json":
        # JSON may hold one comparison, a list of them, or {"comparison": [...]}.
        if isinstance(data, list):
            return {"comparison": data}
        if isinstance(data, dict) and "comparison" not in data:
            return {"comparison": [data]}
    return data


def parse_file(path: Path) -> list[ComparisonIn]:
    try:
        content = ContentFile.model_validate(_read(path))
    except ValidationError as exc:
        lines = [f"{path}: invalid content, nothing imported from this file:"]
        for item in exc.errors():
            field = ".".join(str(part) for part in item["loc"]) or "(file)"
            lines.append(f"  {field}: {item['msg']}")
        raise ImportError_("\n".join(lines))
    slugs = [comparison.slug for comparison in content.comparison]
    duplicates = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if duplicates:
        raise ImportError_(f"{path}: comparison slug {duplicates[0]!r} appears twice in one file")
    return content.comparison


def _upsert_tool(session: Session, data: ToolIn) -> Tool:
    tool = session.exec(select(Tool).where(Tool.slug == data.slug)).first()
    if tool is None:
        tool = Tool(slug=data.slug, name=data.name, category=data.category, tagline=data.tagline,
                    description=data.description, entry_price=data.entry_price)
    else:
        for field in ("name", "category", "tagline", "description", "entry_price"):
            setattr(tool, field, getattr(data, field))
        tool.updated_at = utcnow()
    session.add(tool)
    session.flush()
    return tool


def upsert_comparison(session: Session, data: ComparisonIn) -> bool:
    """Write one comparison (a file import or PUT /api/v1/comparisons/{slug}); True when it was new."""
    comparison = session.exec(select(Comparison).where(Comparison.slug == data.slug)).first()
    created = comparison is None
    if comparison is None:
        comparison = Comparison(slug=data.slug, title=data.title, dek=data.dek,
                                category=data.category or "", published_at=data.published)
    else:
        comparison.title, comparison.dek = data.title, data.dek
        comparison.category, comparison.published_at = data.category or "", data.published
        comparison.updated_at = utcnow()
    session.add(comparison)
    session.flush()
    tools = [_upsert_tool(session, tool) for tool in data.tools]
    # Tools and reviews are replaced wholesale: the file is the source of the page.
    session.exec(delete(Review).where(Review.comparison_id == comparison.id))
    session.exec(delete(ComparisonTool).where(ComparisonTool.comparison_id == comparison.id))
    session.flush()
    by_slug = {tool.slug: tool for tool in tools}
    for position, tool in enumerate(tools):
        session.add(ComparisonTool(comparison_id=comparison.id, tool_id=tool.id, position=position))
    for review in data.reviews:
        session.add(Review(comparison_id=comparison.id, tool_id=by_slug[review.tool].id,
                           lens=review.lens.value, reviewer=review.reviewer,
                           verdict=review.verdict.value, quote=review.quote))
    session.flush()
    return created


def import_files(engine: Engine, paths: list[Path]) -> list[ImportResult]:
    """Validate every file first, then write each file in its own transaction."""
    parsed, errors = [], []
    for path in map(Path, paths):
        try:
            parsed.append((path, parse_file(path)))
        except ImportError_ as exc:
            errors.append(str(exc))
    if errors:
        raise ImportError_("\n".join(errors))
    results = []
    for path, comparisons in parsed:
        result = ImportResult(path)
        with session_scope(engine) as session:
            for comparison in comparisons:
                if upsert_comparison(session, comparison):
                    result.created += 1
                else:
                    result.updated += 1
        results.append(result)
    return results


def sample_files() -> list[Path]:
    """The sample content shipped with the package (written by the Weekly Verdicts team)."""
    folder = Path(__file__).resolve().parent / "sample"
    return sorted(folder.glob("*.toml")) + sorted(folder.glob("*.json"))
