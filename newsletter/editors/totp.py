"""Optional second factor: TOTP (RFC 6238) codes from an authenticator app, through pyotp.

A code is accepted once: the step it belongs to is stored, and codes of that step or older
are refused afterwards (a code seen over a shoulder or in a log cannot be replayed).
"""

from __future__ import annotations

import time

import pyotp
from sqlalchemy import update
from sqlmodel import Session

from newsletter.editors import audit
from newsletter.editors.models import Editor

STEP = 30


def enable(session: Session, editor: Editor, issuer: str, actor: audit.Actor) -> str:
    """A fresh secret for the editor; returns the otpauth:// URI an authenticator app reads."""
    editor.totp_secret, editor.totp_last_step = pyotp.random_base32(), 0
    session.add(editor)
    audit.record(session, actor, "editor.totp_enable", f"editor:{editor.email}")
    return pyotp.TOTP(editor.totp_secret).provisioning_uri(name=editor.email, issuer_name=issuer)


def disable(session: Session, editor: Editor, actor: audit.Actor) -> None:
    before = {"two_factor": bool(editor.totp_secret)}
    editor.totp_secret = None
    session.add(editor)
    audit.record(session, actor, "editor.totp_disable", f"editor:{editor.email}", before, {"two_factor": False})


def accept(session: Session, editor: Editor, code: str, now: float | None = None) -> bool:
    """Check a code (one step of clock drift either way) and use it up."""
    if not editor.totp_secret:
        return True
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return False
    now = time.time() if now is None else now
    totp = pyotp.TOTP(editor.totp_secret, interval=STEP)
    current = int(now // STEP)
    for step in (current - 1, current, current + 1):
        if step > editor.totp_last_step and totp.verify(code, for_time=step * STEP, valid_window=0):
            used = session.execute(update(Editor).where(Editor.id == editor.id, Editor.totp_last_step < step)
                                   .values(totp_last_step=step)).rowcount
            return used == 1  # a second request with the same code, at the same moment, loses
    return False
