"""The audit log: every change an editor, a token or the CLI makes, with before and after.

Written in the same transaction as the change itself, so the log never claims a change that
was rolled back and never misses one that was committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from newsletter.editors.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who acts: an editor (by session), an API token, or the command line."""

    label: str
    editor_id: int | None = None
    token_id: int | None = None

    @classmethod
    def cli(cls) -> "Actor":
        return cls("cli")


def record(session: Session, actor: Actor, action: str, target: str = "", before: dict | None = None,
           after: dict | None = None, detail: str = "") -> None:
    session.add(AuditEntry(editor_id=actor.editor_id, token_id=actor.token_id, actor=actor.label[:300],
                           action=action[:64], target=target[:300], before=before, after=after, detail=detail))


def recent(session: Session, limit: int = 50, before_id: int | None = None, actor: str = "",
           action: str = "") -> list[AuditEntry]:
    """The newest entries (older than `before_id`: keyset paging), optionally those whose actor
    contains `actor` and whose action starts with `action`."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if actor:
        query = query.where(AuditEntry.actor.contains(actor, autoescape=True))
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    return list(session.exec(query))


@dataclass(frozen=True)
class Change:
    field: str  # a dotted path into the record: "title", "tools.1.tagline"
    before: object
    after: object


def changes(before: object, after: object, path: str = "") -> list[Change]:
    """What an edit changed, field by field, so the log reads as "tagline: old -> new" rather
    than as two whole records to compare by eye. A record created or deleted is compared with
    an empty one, so each of its fields is listed."""
    if isinstance(before, dict) and after is None or isinstance(after, dict) and before is None:
        before, after = before or {}, after or {}
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[Change] = []
        for key in sorted(set(before) | set(after), key=str):
            found += changes(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [change for n, (old, new) in enumerate(zip(before, after))
                for change in changes(old, new, f"{path}.{n}" if path else str(n))]
    return [] if before == after else [Change(path or "record", before, after)]
