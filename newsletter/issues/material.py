"""When a verdict change is material: who must hear about it is decided here, in one place.

A change between what readers were sent (a frozen ComparisonView, issues/frozen.py) and what the
comparison says now is material when, for any tool, the panel's verdict flips (ship ↔ pass: the
side of 50 % its Panel ship % is on), its Panel ship % moves by at least `[content]
material_ship_points`, or its entry price changes. A new tagline or a reworded quote is not: the
"Verdicts that changed" block and the follow-ups carry only what a reader acted on.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.issues.view import ComparisonView, ToolView


@dataclass(frozen=True)
class ToolChange:
    """One tool's material change; `reasons` say what moved, in words a reader understands."""

    tool: str
    slug: str
    reasons: tuple[str, ...]
    ship_was: int | None
    ship_now: int | None
    price_was: str
    price_now: str


def _side(ship: int | None) -> str | None:
    if ship is None:
        return None
    return "ship" if ship >= 50 else "pass"


def _tool_key(tool: ToolView) -> str:
    return tool.slug or tool.name  # records frozen before slugs were kept name the tool only


def tool_change(then: ToolView, now: ToolView, ship_points: int) -> ToolChange | None:
    """The material change of one tool between two views of it, or None."""
    reasons = []
    was, is_ = _side(then.panel_ship), _side(now.panel_ship)
    if was and is_ and was != is_:
        reasons.append(f"the panel now says {is_} (was {was})")
    elif then.panel_ship is not None and now.panel_ship is not None \
            and abs(now.panel_ship - then.panel_ship) >= ship_points:
        reasons.append(f"Panel ship {then.panel_ship}% → {now.panel_ship}%")
    if then.entry_price != now.entry_price:
        reasons.append(f"entry price {then.entry_price} → {now.entry_price}")
    if not reasons:
        return None
    return ToolChange(now.name, _tool_key(now), tuple(reasons), then.panel_ship, now.panel_ship,
                      then.entry_price, now.entry_price)


def material_changes(then: ComparisonView, now: ComparisonView, ship_points: int) -> list[ToolChange]:
    """Every tool of the comparison whose change since `then` is material (matched by slug, so
    re-ordered tools are not a change). A tool added or dropped is not compared."""
    current = {_tool_key(tool): tool for tool in now.tools}
    found = []
    for tool in then.tools:
        other = current.get(_tool_key(tool))
        change = tool_change(tool, other, ship_points) if other is not None else None
        if change is not None:
            found.append(change)
    return found
