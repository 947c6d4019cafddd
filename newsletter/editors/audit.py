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


def recent(session: Session, limit: int = 50) -> list[AuditEntry]:
    return list(session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
