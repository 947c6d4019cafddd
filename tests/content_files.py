"""Content files written by tests: comparisons dated when the test needs them, and the largest
comparison the import schema allows (every field at its maximum length)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from newsletter.content.models import Lens
from newsletter.content.schema import ComparisonIn, ReviewIn, ToolIn

# Prose rather than one repeated letter: words wrap and escape like real text. A few non-ASCII
# letters, as real names and quotes have them, make some characters two bytes in UTF-8.
PROSE = ("Teams that ship weekly care about latency, price and the moment the tool first surprises "
         "them; Zoë and Jürgen's review weighs the trade-offs & the lock-in before the verdict. ")


def text(length: int) -> str:
    """Exactly `length` characters of prose, without trailing space."""
    body = (PROSE * (length // len(PROSE) + 1))[:length]
    return body[:-1] + "." if body.endswith(" ") else body


def limit(model: type, field: str) -> int:
    """The schema's maximum length of a field (the import refuses anything longer): the smallest
    MaxLen on the field, looked for in an Optional's inner Annotated too."""
    info = model.model_fields[field]
    found = [m.max_length for m in info.metadata if hasattr(m, "max_length")]
    for inner in getattr(info.annotation, "__args__", ()):
        for meta in getattr(inner, "__metadata__", ()):
            found += [m.max_length for m in getattr(meta, "metadata", [meta]) if hasattr(m, "max_length")]
    return min(found)


def comparison(slug: str, published: datetime, tools: int = 2, longest: bool = False,
               quote: str | None = None, category: str = "Developer Tools") -> dict:
    """One comparison; `longest` fills every text field to its schema maximum."""
    def value(model: type, field: str, short: str) -> str:
        return text(limit(model, field)) if longest else short

    def tool_slug(n: int) -> str:
        base = f"{slug[:8]}-tool-{n}"
        return (base + "-" + "x" * 200)[:limit(ToolIn, "slug")] if longest else base

    tool_list = [{"slug": tool_slug(n), "name": value(ToolIn, "name", f"Tool {n}"),
                  "category": value(ToolIn, "category", category),
                  "tagline": value(ToolIn, "tagline", "Does one thing well"),
                  "description": value(ToolIn, "description", "A tool."),
                  "entry_price": value(ToolIn, "entry_price", "Free")} for n in range(tools)]
    reviews = [{"tool": tool["slug"], "lens": lens.value, "reviewer": value(ReviewIn, "reviewer", "Priya Raman"),
                "verdict": "ship" if n % 2 else "pass",
                "quote": quote or value(ReviewIn, "quote", "Fast to set up and it held up in production.")}
               for n, tool in enumerate(tool_list) for lens in Lens]
    return {"slug": (slug + "-" + "y" * 200)[:limit(ComparisonIn, "slug")] if longest else slug,
            "title": value(ComparisonIn, "title", f"{slug} title"), "dek": value(ComparisonIn, "dek", "Which one?"),
            "published": published.isoformat(), "category": value(ComparisonIn, "category", category),
            "tools": tool_list, "reviews": reviews}


def write_content(path: Path, comparisons: list[dict]) -> Path:
    path.write_text(json.dumps(comparisons), encoding="utf-8")
    return path
