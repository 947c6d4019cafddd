"""The comparison form: its flat input names, the import dict it becomes (validated by the same
ComparisonIn as an import file), and pydantic's error locations mapped back to those inputs.

Inputs: slug, title, dek, published (local date and time in the site's time zone), category;
for each of four tool slots `tools-N-FIELD`; for each tool slot and lens
`reviews-N-LENS-reviewer|verdict|quote`. A slot left entirely blank (tool and its reviews) is
no tool; a review left blank is no review. Error keys are input names, so the template puts
each message next to its input; everything posted comes back in `values`, nothing is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from newsletter.content.models import Lens
from newsletter.content.publishing import TOOL_FIELDS
from newsletter.content.schema import ComparisonIn

SLOTS = 4
TOP_FIELDS = ("slug", "title", "dek", "published", "category")
REVIEW_FIELDS = ("reviewer", "verdict", "quote")
LOCAL = "%Y-%m-%dT%H:%M"
PLACEHOLDER = datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))  # lets the other fields validate


def tool_name(slot: int, name: str) -> str:
    return f"tools-{slot}-{name}"


def review_name(slot: int, lens: str, name: str) -> str:
    return f"reviews-{slot}-{lens}-{name}"


def input_names() -> list[str]:
    names = list(TOP_FIELDS)
    for slot in range(SLOTS):
        names += [tool_name(slot, name) for name in TOOL_FIELDS]
        names += [review_name(slot, lens.value, name) for lens in Lens for name in REVIEW_FIELDS]
    return names


@dataclass
class Submitted:
    """A posted form: what was typed (to refill the form), what it means, what is wrong."""

    values: dict[str, str]
    data: ComparisonIn | None = None
    errors: dict[str, str] = field(default_factory=dict)


def values_of(comparison: dict, zone: ZoneInfo) -> dict[str, str]:
    """The form's values for a comparison in the import shape (content.publishing.as_import)."""
    values = {name: "" for name in input_names()}
    values.update({name: str(comparison.get(name) or "") for name in ("slug", "title", "dek", "category")})
    values["published"] = datetime.fromisoformat(comparison["published"]).astimezone(zone).strftime(LOCAL)
    slots = {}
    for slot, tool in enumerate(comparison["tools"][:SLOTS]):
        slots[tool["slug"]] = slot
        values.update({tool_name(slot, name): tool[name] for name in TOOL_FIELDS})
    for review in comparison["reviews"]:
        if review["tool"] in slots:
            values.update({review_name(slots[review["tool"]], review["lens"], name): review[name]
                           for name in REVIEW_FIELDS})
    return values


def _published(text: str, zone: ZoneInfo) -> tuple[datetime | None, str]:
    if not text:
        return None, "enter the date and time it is published"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None, "use a date and time like 2026-11-24T09:00"
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)), ""


def _slot_used(values: dict[str, str], slot: int) -> bool:
    names = [tool_name(slot, n) for n in TOOL_FIELDS]
    names += [review_name(slot, lens.value, n) for lens in Lens for n in REVIEW_FIELDS]
    return any(values[name] for name in names)


def read(form: dict[str, str], zone: ZoneInfo, slug: str | None = None) -> Submitted:
    """Validate a posted form. `slug` (an edit) overrides the posted one: a page keeps its slug."""
    values = {name: str(form.get(name, "")).replace("\r\n", "\n") for name in input_names()}
    if slug is not None:
        values["slug"] = slug
    published, published_error = _published(values["published"].strip(), zone)
    data: dict = {name: values[name] for name in ("slug", "title", "dek")}
    data.update(published=published or PLACEHOLDER, category=values["category"] or None, tools=[], reviews=[])
    tool_slots, review_slots = [], []
    for slot in range(SLOTS):
        if not _slot_used(values, slot):
            continue
        tool_slots.append(slot)
        data["tools"].append({name: values[tool_name(slot, name)] for name in TOOL_FIELDS})
        for lens in Lens:
            review = {name: values[review_name(slot, lens.value, name)] for name in REVIEW_FIELDS}
            if any(review.values()):
                review_slots.append((slot, lens.value))
                data["reviews"].append({"tool": values[tool_name(slot, "slug")], "lens": lens.value, **review})
    submitted = Submitted(values)
    try:
        submitted.data = ComparisonIn.model_validate(data)
    except ValidationError as exc:
        submitted.errors = map_errors(exc, tool_slots, review_slots)
    if published_error:
        submitted.errors["published"] = published_error
        submitted.data = None
    order: dict[str, int] = {}
    for index, name in enumerate(["form", "title", "slug", "published", "dek", "category", "tools", *input_names()]):
        order.setdefault(name, index)  # the order the form shows them, for the error summary
    submitted.errors = dict(sorted(submitted.errors.items(), key=lambda item: order.get(item[0], 0)))
    return submitted


PATH_IN_MESSAGE = re.compile(r"^Value error, ([a-z_]+(?:\.\d+)?(?:\.[a-z_]+)?): (.*)$", re.S)


def map_errors(exc: ValidationError, tool_slots: list[int], review_slots: list[tuple[int, str]]) -> dict[str, str]:
    """pydantic locations (tools.1.slug, reviews.3.quote, or a path the model validator puts in
    its message) as input names; the first message per input wins."""
    errors: dict[str, str] = {}
    for item in exc.errors():
        loc, message = [str(part) for part in item["loc"]], str(item["msg"])
        found = PATH_IN_MESSAGE.match(message)
        if not loc and found:
            loc, message = found.group(1).split("."), found.group(2)
        errors.setdefault(_input_for(loc, tool_slots, review_slots), message.removeprefix("Value error, "))
    return errors


def _input_for(loc: list[str], tool_slots: list[int], review_slots: list[tuple[int, str]]) -> str:
    if len(loc) >= 3 and loc[0] == "tools" and loc[1].isdigit() and int(loc[1]) < len(tool_slots):
        return tool_name(tool_slots[int(loc[1])], loc[2])
    if len(loc) >= 2 and loc[0] == "reviews" and loc[1].isdigit() and int(loc[1]) < len(review_slots):
        slot, lens = review_slots[int(loc[1])]
        if len(loc) >= 3 and loc[2] in REVIEW_FIELDS:
            return review_name(slot, lens, loc[2])
        return tool_name(slot, "slug")  # the review names its tool by the slot's slug
    if loc and loc[0] in TOP_FIELDS + ("tools",):
        return loc[0]
    return "form"


TOP_LABELS = {"slug": "Slug", "title": "Title", "dek": "Dek", "published": "Published",
              "category": "Category", "tools": "Tools", "form": "Form"}
FIELD_LABELS = {"slug": "slug", "name": "name", "category": "category", "tagline": "tagline",
                "description": "description", "entry_price": "entry price", "reviewer": "reviewer",
                "verdict": "verdict", "quote": "quote"}


def label_for(name: str) -> str:
    """A person's name for an input, for the error summary ("Tool B, Thesis review: quote")."""
    parts = name.split("-")
    if len(parts) == 3 and parts[0] == "tools":
        return f"Tool {'ABCD'[int(parts[1])]} {FIELD_LABELS.get(parts[2], parts[2])}"
    if len(parts) == 4 and parts[0] == "reviews":
        lens = Lens(parts[2]).label
        return f"Tool {'ABCD'[int(parts[1])]}, {lens} review: {FIELD_LABELS.get(parts[3], parts[3])}"
    return TOP_LABELS.get(name, name)


def open_slots(values: dict[str, str], errors: dict[str, str]) -> set[int]:
    """Tool slots the form shows unfolded: those with anything typed or anything wrong."""
    wrong = {int(name.split("-")[1]) for name in errors if name.startswith(("tools-", "reviews-"))}
    return wrong | {slot for slot in range(SLOTS) if _slot_used(values, slot)}
