"""Editor accounts: add, list, remove, set a password through a one-time link, check a login.

The set-password link is signed (the secret key ring), purpose-bound and expiring, and it
names a fingerprint of the password hash it was made for: once a password is set the
fingerprint changes, so the link works exactly once without any stored state.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from itsdangerous import BadData
from sqlalchemy import update
from sqlmodel import Session, select

from newsletter.db import utcnow
from newsletter.editors import audit
from newsletter.editors.models import Editor, EditorSession
from newsletter.editors.passwords import check_strength, hash_password, needs_rehash, verify_password
from newsletter.editors.roles import Role
from newsletter.subscribers.service import InvalidInput, normalize_email
from newsletter.tokens import timestamp_signer

SET_PASSWORD_SALT = "weekly-verdicts:editor-set-password"
LOGIN_TICKET_SALT = "weekly-verdicts:editor-login-ticket"
LOGIN_TICKET_SECONDS = 300


class AccountError(ValueError):
    """A request about an account that cannot be done; the message says why."""


def _fingerprint(editor: Editor) -> str:
    return hashlib.sha256(f"{editor.id}:{editor.password_hash}".encode()).hexdigest()[:20]


def clean_email(email: str) -> str:
    try:
        return normalize_email(email, "email", True).lower()
    except InvalidInput as exc:
        raise AccountError(str(exc)) from None


def find(session: Session, email: str) -> Editor | None:
    return session.exec(select(Editor).where(Editor.email == email.strip().lower())).first()


def add_editor(session: Session, email: str, role: str, actor: audit.Actor, password: str | None = None) -> Editor:
    """A new editor, or a removed one back with a new role (and no password until they set one)."""
    email, role = clean_email(email), Role.parse(role).name
    if password is not None:
        check_strength(password, email)
    editor = find(session, email)
    if editor is not None and editor.disabled_at is None:
        raise AccountError(f"{email} is already an editor ({editor.role}); remove them first to start over")
    before = {"role": editor.role, "disabled": True} if editor else None
    editor = editor or Editor(email=email, role=role)
    editor.role, editor.disabled_at, editor.totp_secret = role, None, None
    editor.password_hash = hash_password(password) if password is not None else ""
    session.add(editor)
    session.flush()
    audit.record(session, actor, "editor.add", f"editor:{email}", before, {"role": role})
    return editor


def _keep_an_owner(session: Session, editor: Editor, new_role: str | None) -> None:
    """Refuse a change that would leave no active owner: nobody could manage editors any more.
    The owners' rows are locked first, so two owners demoting each other at once cannot both win."""
    if editor.role != Role.owner.name or new_role == Role.owner.name:
        return
    owners = session.exec(select(Editor.id).where(Editor.role == Role.owner.name, Editor.disabled_at.is_(None))
                          .with_for_update()).all()
    if set(owners) <= {editor.id}:
        raise AccountError(f"{editor.email} is the last owner; make another editor an owner first")


def active_editor(session: Session, email: str) -> Editor:
    editor = find(session, email)
    if editor is None or editor.disabled_at is not None:
        raise AccountError(f"{email.strip()} is not an editor")
    return editor


def change_role(session: Session, email: str, role: str, actor: audit.Actor) -> Editor:
    """A new role, effective at the editor's next request (sessions read the role each time)."""
    editor, role = active_editor(session, email), Role.parse(role).name
    if role == editor.role:
        return editor
    _keep_an_owner(session, editor, role)
    before, editor.role = editor.role, role
    session.add(editor)
    audit.record(session, actor, "editor.role", f"editor:{editor.email}", {"role": before}, {"role": role})
    return editor


def remove_editor(session: Session, email: str, actor: audit.Actor, now: datetime | None = None) -> Editor:
    """Disable the account and end its sessions; the row stays so the audit log keeps its name."""
    editor = active_editor(session, email)
    _keep_an_owner(session, editor, None)
    now = now or utcnow()
    editor.disabled_at, editor.password_hash, editor.totp_secret = now, "", None
    session.add(editor)
    session.execute(update(EditorSession).where(EditorSession.editor_id == editor.id,
                                                EditorSession.revoked_at.is_(None)).values(revoked_at=now))
    audit.record(session, actor, "editor.remove", f"editor:{editor.email}", {"role": editor.role}, None)
    return editor


def list_editors(session: Session) -> list[Editor]:
    return list(session.exec(select(Editor).order_by(Editor.disabled_at.is_not(None), Editor.email)))


def _sign(secret: str, salt: str, editor: Editor) -> str:
    value = f"{editor.id}.{_fingerprint(editor)}"
    return timestamp_signer(secret, salt).sign(value.encode()).decode()


def _signed_editor(session: Session, secret: str, salt: str, token: str, max_age: float) -> Editor:
    """The active editor a signed token names, if it is genuine, fresh and made for their
    current password hash (so it stops working once that changes)."""
    try:
        value = timestamp_signer(secret, salt).unsign(token, max_age=max_age).decode()
        editor_id, fingerprint = value.split(".", 1)
        editor = session.get(Editor, int(editor_id))
    except (BadData, ValueError, UnicodeDecodeError, OverflowError):
        raise AccountError("this link does not work: it is mistyped, expired or already used") from None
    if editor is None or editor.disabled_at is not None or _fingerprint(editor) != fingerprint:
        raise AccountError("this link does not work: it is mistyped, expired or already used")
    return editor


def set_password_token(secret: str, editor: Editor) -> str:
    return _sign(secret, SET_PASSWORD_SALT, editor)


def editor_for_set_password(session: Session, secret: str, token: str, max_age_seconds: float) -> Editor:
    """The editor a set-password link names, if the link is genuine, fresh and not yet used."""
    return _signed_editor(session, secret, SET_PASSWORD_SALT, token, max_age_seconds)


def login_ticket(secret: str, editor: Editor) -> str:
    """Proof, between the password step and the TOTP step of a login, that the password was right."""
    return _sign(secret, LOGIN_TICKET_SALT, editor)


def editor_for_ticket(session: Session, secret: str, ticket: str) -> Editor:
    return _signed_editor(session, secret, LOGIN_TICKET_SALT, ticket, LOGIN_TICKET_SECONDS)


def set_password(session: Session, editor: Editor, password: str, actor: audit.Actor) -> None:
    """A new password ends every session the account had (someone may have known the old one)."""
    check_strength(password, editor.email)
    editor.password_hash = hash_password(password)
    session.add(editor)
    session.execute(update(EditorSession).where(EditorSession.editor_id == editor.id,
                                                EditorSession.revoked_at.is_(None)).values(revoked_at=utcnow()))
    audit.record(session, actor, "editor.set_password", f"editor:{editor.email}")


def check_login(session: Session, email: str, password: str) -> Editor | None:
    """The active editor these credentials name, or None (the same work either way)."""
    editor = find(session, email[:254])
    if editor is None or editor.disabled_at is not None:
        verify_password("", password)
        return None
    if not verify_password(editor.password_hash, password):
        return None
    if needs_rehash(editor.password_hash):
        editor.password_hash = hash_password(password)
        session.add(editor)
    return editor
