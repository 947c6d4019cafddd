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
from newsletter.content import revisions
from newsletter.content.revisions import Origin
from newsletter.content.schema import ComparisonIn, ContentFile, ToolIn
from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError
from newsletter.files import read_text_limited


class ImportError_(UserError):
    """A content file is unreadable or invalid; the message names file, field and reason."""


@dataclass
class Counts:
    """How many comparisons an import or a pull created, changed and left as they were."""
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, upserted: "Upserted") -> bool:
        """Count one upsert; True when it wrote anything (created or changed)."""
        if upserted.created:
            self.created += 1
        elif upserted.changed:
            self.updated += 1
        else:
            self.unchanged += 1
        return upserted.created or upserted.changed


@dataclass
class ImportResult(Counts):
    path: Path = Path()


def _finite(text: str) -> float:
    """JSON 1e999999 and TOML inf would be infinity: refused like any other bad value."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]!r} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _parse(path: Path, text: str, label: str = "") -> object:
    """TOML or JSON by suffix; deep nesting and huge numbers are errors naming the file."""
    label = label or str(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ImportError_(f"{path}: unknown file type {suffix!r} (use .toml or .json)")
    kind = suffix[1:].upper()
    try:
        if suffix == ".toml":
            return tomllib.loads(text, parse_float=_finite)
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise ImportError_(f"{label}: not valid {kind}: nested too deeply") from None
    except ValueError as exc:  # also TOMLDecodeError, JSONDecodeError, integers with too many digits
        raise ImportError_(f"{label}: not valid {kind}: {' '.join(str(exc).split())[:200]}") from None


def _shape(data: object) -> object:
    """JSON may hold one comparison, a list of them, or {"comparison": [...]}."""
    if isinstance(data, list):
        return {"comparison": data}
    if isinstance(data, dict) and "comparison" not in data:
        return {"comparison": [data]}
    return data


def _read(path: Path) -> object:
    try:
        text = read_text_limited(path)
    except UserError as exc:
        raise ImportError_(str(exc)) from None
    data = _parse(path, text)
    return _shape(data) if path.suffix.lower() == ".json" else data


def _where(data: object, loc: tuple) -> str:
    """A pydantic location as a dotted path; a comparison named by its slug too when it has one."""
    field = ".".join(str(part) for part in loc) or "(file)"
    if len(loc) >= 2 and loc[0] == "comparison" and isinstance(loc[1], int) and isinstance(data, dict):
        items = data.get("comparison")
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        if isinstance(item, dict) and isinstance(item.get("slug"), str):
            field += f" (comparison {item['slug'][:160]!r})"
    return field


def validate(label: str, data: object, what: str = "file") -> list[ComparisonIn]:
    """The comparisons of one parsed file or feed, all valid or an error naming each bad field."""
    try:
        content = ContentFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{label}: invalid content, nothing imported from this {what}:"]
        lines += [f"  {_where(data, item['loc'])}: {item['msg']}" for item in exc.errors()]
        raise ImportError_("\n".join(lines))
    slugs = [comparison.slug for comparison in content.comparison]
    duplicates = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if duplicates:
        raise ImportError_(f"{label}: comparison slug {duplicates[0]!r} appears twice in one {what}")
    return content.comparison


def parse_file(path: Path) -> list[ComparisonIn]:
    return validate(str(path), _read(path))


def parse_feed(label: str, text: str) -> list[ComparisonIn]:
    """A JSON feed of comparisons (the shapes an import file may have), validated whole."""
    return validate(label, _shape(_parse(Path(f"{label}.json"), text, label)), "feed")


def _assign(row: object, values: dict) -> bool:
    """Set only the fields that differ (so an unchanged row is not written); True if any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _upsert_tool(session: Session, data: ToolIn) -> tuple[Tool, bool]:
    """The tool by slug, created or with its facts brought up to date; True when they changed."""
    facts = {field: getattr(data, field) for field in ("name", "category", "tagline", "description", "entry_price")}
    tool = session.exec(select(Tool).where(Tool.slug == data.slug)).first()
    if tool is None:
        tool = Tool(slug=data.slug, **facts)
        session.add(tool)
        session.flush()
        return tool, False
    changed = _assign(tool, facts)
    if changed:
        tool.updated_at = utcnow()
        session.add(tool)
    return tool, changed


def _set_tools(session: Session, comparison: Comparison, tools: list[Tool]) -> bool:
    """The comparison's tools in this order; rows rewritten only when the list differs."""
    current = list(session.exec(select(ComparisonTool.tool_id).where(ComparisonTool.comparison_id == comparison.id)
                                .order_by(ComparisonTool.position)))
    if current == [tool.id for tool in tools]:
        return False
    # positions are unique per comparison: re-numbering in place could collide mid-way
    session.exec(delete(ComparisonTool).where(ComparisonTool.comparison_id == comparison.id))
    for position, tool in enumerate(tools):
        session.add(ComparisonTool(comparison_id=comparison.id, tool_id=tool.id, position=position))
    return True


def _set_reviews(session: Session, comparison: Comparison, data: ComparisonIn, tools: list[Tool]) -> bool:
    """Reviews upserted by (tool, lens): a changed one is updated, a gone one deleted, so a
    review keeps its row and only what differs is written."""
    by_slug = {tool.slug: tool for tool in tools}
    existing = {(r.tool_id, r.lens): r for r in session.exec(select(Review).where(Review.comparison_id == comparison.id))}
    changed = False
    for review in data.reviews:
        key = (by_slug[review.tool].id, review.lens.value)
        values = {"reviewer": review.reviewer, "verdict": review.verdict.value, "quote": review.quote}
        row = existing.pop(key, None)
        if row is None:
            session.add(Review(comparison_id=comparison.id, tool_id=key[0], lens=key[1], **values))
            changed = True
        elif _assign(row, values):
            session.add(row)
            changed = True
    for row in existing.values():
        session.delete(row)
        changed = True
    return changed


@dataclass(frozen=True)
class Upserted:
    created: bool  # a new comparison
    changed: bool  # it (or a tool's facts it shows) differs from before: a revision was written


def upsert_comparison(session: Session, data: ComparisonIn, origin: Origin) -> Upserted:
    """Write one comparison (an import file, the console form, PUT /api/v1/comparisons/{slug},
    a feed pull) and its revisions. Only what differs is written, and a
    revision is recorded only when something did (content/revisions.py)."""
    comparison = session.exec(select(Comparison).where(Comparison.slug == data.slug)).first()
    created = comparison is None
    fields = {"title": data.title, "dek": data.dek, "category": data.category or "", "published_at": data.published}
    if comparison is None:
        comparison = Comparison(slug=data.slug, checked_at=data.checked or utcnow(), **fields)
        session.add(comparison)
        session.flush()
        changed = True
    else:
        changed = _assign(comparison, fields)
    upserted = [_upsert_tool(session, tool) for tool in data.tools]
    tools = [tool for tool, _ in upserted]
    changed = _set_tools(session, comparison, tools) | changed
    changed = _set_reviews(session, comparison, data, tools) | changed
    facts_changed = [tool.id for tool, tool_changed in upserted if tool_changed]
    if not created and (changed or facts_changed):
        comparison.updated_at = utcnow()
    if data.checked is not None:
        _assign(comparison, {"checked_at": data.checked})
    elif not created and (changed or facts_changed):
        comparison.checked_at = utcnow()  # facts written now are facts checked now
    session.add(comparison)
    session.flush()
    assert comparison.id is not None
    written = revisions.record(session, {comparison.id} | revisions.sharing_tools(session, facts_changed), origin)
    return Upserted(created, any(revision.comparison_id == comparison.id for revision in written))


def import_files(engine: Engine, paths: list[Path], origin: Origin | None = None,
                 only_new: bool = False) -> list[ImportResult]:
    """Validate every file first, then write each file in its own transaction (with its
    revisions; `origin` by default the command line's user, source "import"). `only_new`: leave
    every comparison whose slug exists as it is (`newsletter demo` must never undo an edit)."""
    origin = origin or Origin.command_line("import")
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
        result = ImportResult(path=path)
        with session_scope(engine) as session:
            for comparison in comparisons:
                if only_new and session.exec(select(Comparison.id).where(Comparison.slug == comparison.slug)).first():
                    continue
                result.add(upsert_comparison(session, comparison, origin))
        results.append(result)
    return results


def sample_files() -> list[Path]:
    """The sample content shipped with the package (written by the Weekly Verdicts team)."""
    folder = Path(__file__).resolve().parent / "sample"
    return sorted(folder.glob("*.toml")) + sorted(folder.glob("*.json"))
