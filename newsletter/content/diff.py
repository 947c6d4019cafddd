"""A readable diff of two revision snapshots, one line per change, in the words an editor uses:
"Review Ada/thesis on GroqCloud: verdict pass → ship", "GroqCloud: entry price Free → $5/month".
The same lines serve `newsletter content history`, the console's history page and the API.
"""

from __future__ import annotations

from datetime import UTC, datetime

LONG = 70
TOP = (("title", "title"), ("dek", "dek"), ("category", "category"), ("published", "published"),
       ("checked_at", "checked"), ("unpublished_at", "unpublished"))
MOMENTS = ("published", "checked_at", "unpublished_at")
TOOL = (("name", "name"), ("category", "category"), ("tagline", "tagline"), ("description", "description"),
        ("entry_price", "entry price"))
REVIEW = (("reviewer", "reviewer"), ("verdict", "verdict"), ("quote", "quote"))


def short(value: object) -> str:
    """A value as one line: long text cut with an ellipsis, nothing as "(none)"."""
    if value is None or value == "":
        return "(none)"
    text = " ".join(str(value).split())
    return text if len(text) <= LONG else text[: LONG - 1] + "…"


def _field(label: str, old: object, new: object, sep: str = " ") -> str:
    return f"{label}{sep}{short(old)} → {short(new)}"


def _moment(value: object) -> object:
    """A stored ISO time as "2026-12-02 13:05 UTC" (the snapshots keep UTC)."""
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else value
    except ValueError:
        return value


def _tools(before: dict, after: dict) -> list[str]:
    old = {tool["slug"]: tool for tool in before.get("tools", [])}
    new = {tool["slug"]: tool for tool in after.get("tools", [])}
    lines = [f"Tool {new[slug]['name']} added" for slug in new if slug not in old]
    lines += [f"Tool {old[slug]['name']} removed" for slug in old if slug not in new]
    for slug in (slug for slug in new if slug in old):
        lines += [f"{old[slug]['name']}: {_field(label, old[slug].get(key), new[slug].get(key))}"
                  for key, label in TOOL if old[slug].get(key) != new[slug].get(key)]
    kept_old = [slug for slug in old if slug in new]
    kept_new = [slug for slug in new if slug in old]
    if kept_old != kept_new:
        lines.append(f"tool order: {', '.join(kept_old)} → {', '.join(kept_new)}")
    return lines


def _reviews(before: dict, after: dict) -> list[str]:
    names = {tool["slug"]: tool["name"] for tool in before.get("tools", []) + after.get("tools", [])}
    old = {(r["tool"], r["lens"]): r for r in before.get("reviews", [])}
    new = {(r["tool"], r["lens"]): r for r in after.get("reviews", [])}

    def title(review: dict) -> str:
        return f"Review {review['reviewer']}/{review['lens']} on {names.get(review['tool'], review['tool'])}"

    lines = []
    for key, review in new.items():
        if key not in old:
            lines.append(f"{title(review)} added: {review['verdict']}")
            continue
        was = old[key]
        lines += [f"{title(was)}: {_field(label, was.get(name), review.get(name))}"
                  for name, label in REVIEW if was.get(name) != review.get(name)]
    lines += [f"{title(review)} removed (was {review['verdict']})" for key, review in old.items() if key not in new]
    return lines


def describe(before: dict | None, after: dict) -> list[str]:
    """The changes from `before` (None: the first revision) to `after`."""
    if before is None:
        tools = ", ".join(tool["name"] for tool in after.get("tools", []))
        count = len(after.get("reviews", []))
        return [f"created: {short(after.get('title'))} ({tools}; {count} review{'' if count == 1 else 's'})"]
    lines = []
    for key, label in TOP:
        old, new = before.get(key), after.get(key)
        if key in MOMENTS:
            old, new = _moment(old), _moment(new)  # to the minute: "checked" moving by seconds is noise
        if old != new:
            lines.append(_field(label, old, new, ": "))
    lines += _tools(before, after) + _reviews(before, after)
    if not lines and before.get("checked_at") != after.get("checked_at"):
        lines.append(f"checked again: {_moment(after.get('checked_at'))}")
    return lines or ["no visible change"]
