"""Sign-in security: Argon2 hashes, cookies, CSRF, no session fixation, throttling, expiry,
one-time set-password links and the TOTP second factor."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pyotp
import pytest
from argon2 import PasswordHasher, extract_parameters, profiles
from sqlalchemy import select, text
from starlette.testclient import TestClient

from newsletter.config import load_settings
from newsletter.db import session_scope, utcnow
from newsletter.editors import accounts, audit, sessions, totp
from newsletter.editors.models import AuditEntry, Editor, EditorSession
from newsletter.web.console.deps import FORM_COOKIE, SESSION_COOKIE
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET, write_config
from tests.console.conftest import PASSWORD, Console, csrf_in


def test_passwords_are_stored_as_argon2id_hashes_only(console):
    with session_scope(console.engine) as session:
        stored = session.execute(select(Editor.password_hash).where(Editor.email == "owner@editors.example")).scalar()
        dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM editor")) for v in row)
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, PASSWORD)  # the reference implementation agrees
    assert PASSWORD not in dump


def _owner_hash(console, stored: str | None = None) -> str:
    """The owner's stored password hash; with `stored`, set first."""
    with session_scope(console.engine) as session:
        owner = session.execute(select(Editor).where(Editor.email == "owner@editors.example")).scalar_one()
        if stored is not None:
            owner.password_hash = stored
        return owner.password_hash


def test_the_shipped_hasher_keeps_its_own_hashes_and_upgrades_older_ones(shipped_password_hasher, console,
                                                                        monkeypatch):
    """The suite signs in with light Argon2 parameters (tests/conftest.py); what ships is argon2-cffi's
    RFC 9106 low-memory profile. With it in place: a hash it made signs in and is kept as it is;
    a hash with other (older, weaker) parameters signs in and is stored again with the shipped ones."""
    from newsletter.editors import passwords

    light = _owner_hash(console)  # made by the suite's light hasher: "older parameters" here
    monkeypatch.setattr(passwords, "_hasher", shipped_password_hasher)
    stored = passwords.hash_password(PASSWORD)
    assert extract_parameters(stored) == profiles.RFC_9106_LOW_MEMORY
    _owner_hash(console, stored)
    console.login("owner")
    assert _owner_hash(console) == stored  # current parameters: no upgrade due
    _owner_hash(console, light)
    console.login("owner")
    upgraded = _owner_hash(console)
    assert upgraded != light and extract_parameters(upgraded) == profiles.RFC_9106_LOW_MEMORY


def test_cookies_are_secure_httponly_samesite(console):
    client = console.client()
    form = client.get("/admin/login")
    form_cookie = form.headers["set-cookie"]
    assert form_cookie.startswith(FORM_COOKIE) and "HttpOnly" in form_cookie and "Secure" in form_cookie
    assert "samesite=strict" in form_cookie.lower()
    answer = client.post("/admin/login", data={"email": "owner@editors.example", "password": PASSWORD,
                                               "csrf_token": csrf_in(form.text)})
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE) and "HttpOnly" in cookie and "Secure" in cookie
    assert "samesite=lax" in cookie.lower() and "Path=/admin" in cookie


def test_login_without_or_with_a_foreign_csrf_token_is_refused(console):
    victim, attacker = console.client(), console.client()
    foreign = csrf_in(attacker.get("/admin/login").text)
    victim.get("/admin/login")
    for token in ("", foreign, "x" * 64):
        answer = victim.post("/admin/login", data={"email": "owner@editors.example", "password": PASSWORD,
                                                   "csrf_token": token})
        assert answer.status_code == 400 and "expired" in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    bare = console.client()  # no form cookie at all (a cross-site post carries none: SameSite=Strict)
    answer = bare.post("/admin/login", data={"email": "owner@editors.example", "password": PASSWORD,
                                             "csrf_token": foreign})
    assert answer.status_code == 400


def test_a_login_never_keeps_the_session_id_the_browser_came_with(console):
    client = console.client()
    planted = "attacker-chosen-session-id-000000000000000"
    client.cookies.set(SESSION_COOKIE, planted, domain="verdicts.example", path="/admin")
    form = {"email": "owner@editors.example", "password": PASSWORD,
            "csrf_token": csrf_in(client.get("/admin/login").text)}
    assert client.post("/admin/login", data=form).status_code == 303
    first = client.cookies.get(SESSION_COOKIE, path="/admin")
    assert first and first != planted
    attacker = console.client()
    attacker.cookies.set(SESSION_COOKIE, planted, domain="verdicts.example", path="/admin")
    assert attacker.get("/admin").status_code == 303
    # Signing in again (say, after a stranger used this browser) rotates the id and ends the old one.
    assert client.post("/admin/login", data=form).status_code == 303
    second = client.cookies.get(SESSION_COOKIE, path="/admin")
    assert second != first
    stale = console.client()
    stale.cookies.set(SESSION_COOKIE, first, domain="verdicts.example", path="/admin")
    assert stale.get("/admin").status_code == 303
    assert client.get("/admin").status_code == 200
    with session_scope(console.engine) as session:
        rows = session.execute(select(EditorSession.token_hash, EditorSession.revoked_at)).all()
    assert {sessions.hash_secret(first): True, sessions.hash_secret(second): False} == \
        {h: r is not None for h, r in rows}  # ids are stored hashed; the first is revoked


@pytest.fixture
def throttled_console(tmp_path, db_url, monkeypatch, console):
    monkeypatch.setenv("NEWSLETTER_ADMIN__LOGINS_PER_ACCOUNT", "3")
    monkeypatch.setenv("NEWSLETTER_ADMIN__LOGINS_PER_IP", "5")
    monkeypatch.setenv("NEWSLETTER_WEB__TRUST_FORWARDED_FOR", "true")
    settings = load_settings(write_config(tmp_path, db_url))
    return Console(create_app(settings, engine=console.engine, secret=TEST_SECRET, with_sender=False),
                   console.engine, settings)


def test_logins_are_throttled_per_account_and_per_ip(throttled_console):
    c = throttled_console
    client = c.client()
    for _ in range(3):
        assert c.post_login(client, "owner@editors.example", "wrong password!", headers={}).status_code == 400
    locked = c.post_login(client, "owner@editors.example", PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert SESSION_COOKIE not in locked.headers.get("set-cookie", "")
    elsewhere = c.client()
    elsewhere.headers["X-Forwarded-For"] = "198.51.100.7"  # the same account from another IP: still locked
    assert c.post_login(elsewhere, "OWNER@editors.example", PASSWORD).status_code == 429
    # Per IP: 5 attempts from one address, whatever the accounts.
    roaming = c.client()
    roaming.headers["X-Forwarded-For"] = "203.0.113.9"
    for role in ("viewer", "reviewer", "editor", "nobody", "viewer"):
        assert c.post_login(roaming, f"{role}@editors.example", "wrong password!").status_code == 400
    assert c.post_login(roaming, "editor@editors.example", PASSWORD).status_code == 429
    other = c.client()
    other.headers["X-Forwarded-For"] = "192.0.2.1"
    assert c.post_login(other, "editor@editors.example", PASSWORD).status_code == 303


def test_successful_sign_ins_never_lock_their_owner_out(throttled_console):
    """The limits count failures: signing in more often than the limit allows (several browsers,
    an office behind one address) always works, and failures still lock the account."""
    c = throttled_console
    for _ in range(7):  # the account allows 3 attempts and the address 5 per window
        client = c.client()
        client.headers["X-Forwarded-For"] = "198.51.100.20"
        assert c.post_login(client, "Owner@editors.example", PASSWORD).status_code == 303
    client = c.client()
    client.headers["X-Forwarded-For"] = "198.51.100.20"
    for _ in range(3):
        assert c.post_login(client, "owner@editors.example", "wrong password!").status_code == 400
    assert c.post_login(client, "owner@editors.example", PASSWORD).status_code == 429


def owner_with_a_code(c: Console) -> str:
    """The owner's account with a second factor; its TOTP secret."""
    with session_scope(c.engine) as session:
        uri = totp.enable(session, accounts.find(session, "owner@editors.example"), "Weekly Verdicts",
                          audit.Actor.cli())
    return re.search(r"secret=([A-Z2-7]+)", uri).group(1)


def code_step(client: TestClient, step, secret: str, at: float):
    """The sign-in's second step, on the ticket of the password step's page `step`."""
    ticket = re.search(r'name="ticket" value="([^"]+)"', step.text).group(1)
    return client.post("/admin/login/totp", data={"ticket": ticket, "csrf_token": csrf_in(step.text),
                                                  "code": pyotp.TOTP(secret).at(at)})


def test_a_sign_in_with_a_code_gives_back_both_of_its_attempts(throttled_console):
    c = throttled_console
    secret = owner_with_a_code(c)
    now = time.time()
    # Three sign-ins of two attempts each (password, code) where the account allows 3 attempts; a
    # code works once and later than the last, so each uses the next step's (one step of drift).
    for offset in (-30, 0, 30):
        client = c.client()
        step = c.post_login(client, "owner@editors.example", PASSWORD)
        assert step.status_code == 200, step.text
        done = code_step(client, step, secret, now + offset)
        assert done.status_code == 303, done.text
    assert c.post_login(c.client(), "owner@editors.example", PASSWORD).status_code == 200


def test_reusing_a_sign_in_ticket_never_takes_back_more_than_it_counted(throttled_console):
    """Each step gives back only its own attempt: a second code on the same ticket (outside review:
    it gave back two for one) or a code sent from another address cannot lower the failures
    counted against an address."""
    c = throttled_console
    secret = owner_with_a_code(c)
    client = c.client()
    client.headers["X-Forwarded-For"] = "198.51.100.30"
    for role in ("viewer", "reviewer"):  # two failures from this address (it allows 5)
        assert c.post_login(client, f"{role}@editors.example", "wrong password!").status_code == 400
    step = c.post_login(client, "owner@editors.example", PASSWORD)
    now = time.time()
    for offset in (-30, 0, 30):  # the same ticket, three valid codes
        done = code_step(client, step, secret, now + offset)
        assert done.status_code == 303, done.text
    client = c.client()  # signed in now: the next attempts from a new browser at the same address
    client.headers["X-Forwarded-For"] = "198.51.100.30"
    for role in ("editor", "nobody", "viewer"):  # failures 3, 4 and 5
        assert c.post_login(client, f"{role}@editors.example", "wrong password!").status_code == 400
    assert c.post_login(client, "reviewer@editors.example", "wrong password!").status_code == 429


def test_sessions_expire_and_idle_out(console):
    with session_scope(console.engine) as session:
        editor = accounts.find(session, "viewer@editors.example")
        raw = sessions.start(session, editor, timedelta(hours=12))
    idle = timedelta(minutes=120)
    now = utcnow()
    with session_scope(console.engine) as session:
        assert sessions.resume(session, TEST_SECRET, raw, idle, now + timedelta(minutes=121)) is None
        assert sessions.resume(session, TEST_SECRET, raw, idle, now + timedelta(minutes=119)) is not None
        # that request counted as activity: idle time runs from it
        assert sessions.resume(session, TEST_SECRET, raw, idle, now + timedelta(minutes=119 + 119)) is not None
        assert sessions.resume(session, TEST_SECRET, raw, idle, now + timedelta(minutes=238 + 121)) is None
        assert sessions.resume(session, TEST_SECRET, raw, timedelta(days=2), now + timedelta(hours=12, seconds=1)) is None
        assert sessions.resume(session, TEST_SECRET, raw + "x", idle, now) is None


def test_the_set_password_link_works_once_and_ends_old_sessions(console):
    with session_scope(console.engine) as session:
        editor = accounts.add_editor(session, "new.editor@editors.example", "editor", audit.Actor.cli())
        link = accounts.set_password_token(TEST_SECRET, editor)
    client = console.client()
    assert console.post_login(client, "new.editor@editors.example", "").status_code == 400  # no password yet
    page = client.get(f"/admin/set-password/{link}")
    assert page.status_code == 200 and "new.editor@editors.example" in page.text
    token = csrf_in(page.text)
    short = client.post(f"/admin/set-password/{link}", data={"password": "short", "password_repeat": "short",
                                                              "csrf_token": token})
    assert short.status_code == 422 and "At least 10 characters" in short.text
    differ = client.post(f"/admin/set-password/{link}", data={"password": "one long password",
                                                              "password_repeat": "another long one",
                                                              "csrf_token": token})
    assert differ.status_code == 422 and "differ" in differ.text
    forged = client.post(f"/admin/set-password/{link}", data={"password": "the chosen password",
                                                              "password_repeat": "the chosen password"})
    assert forged.status_code == 400
    done = client.post(f"/admin/set-password/{link}", data={"password": "the chosen password",
                                                            "password_repeat": "the chosen password",
                                                            "csrf_token": token})
    assert done.status_code == 200 and "Password set" in done.text
    signed_in = console.login(email="new.editor@editors.example", password="the chosen password")
    assert client.get(f"/admin/set-password/{link}").status_code == 400  # used up
    assert client.get(f"/admin/set-password/{link[:-2]}xx").status_code == 400  # altered
    with session_scope(console.engine) as session, pytest.raises(accounts.AccountError):
        accounts.editor_for_set_password(session, TEST_SECRET, link, -1)  # expired
    with session_scope(console.engine) as session:
        editor = accounts.find(session, "new.editor@editors.example")
        accounts.set_password(session, editor, "yet another password", audit.Actor.cli())
    assert signed_in.get("/admin").status_code == 303  # a new password ends every session


def test_totp_second_factor(console):
    with session_scope(console.engine) as session:
        editor = accounts.find(session, "owner@editors.example")
        uri = totp.enable(session, editor, "Weekly Verdicts", audit.Actor.cli())
    secret = re.search(r"secret=([A-Z2-7]+)", uri).group(1)
    client = console.client()
    step = console.post_login(client, "owner@editors.example", PASSWORD)
    assert step.status_code == 200 and 'name="code"' in step.text
    assert SESSION_COOKIE not in step.headers.get("set-cookie", "")
    ticket = re.search(r'name="ticket" value="([^"]+)"', step.text).group(1)
    form = {"ticket": ticket, "csrf_token": csrf_in(step.text)}
    wrong = client.post("/admin/login/totp", data={**form, "code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"})
    assert wrong.status_code == 400 and client.get("/admin").status_code == 303
    code = pyotp.TOTP(secret).now()
    assert client.post("/admin/login/totp", data={**form, "code": code}).status_code == 303
    assert client.get("/admin").status_code == 200
    replay = console.client()
    step = console.post_login(replay, "owner@editors.example", PASSWORD)
    again = replay.post("/admin/login/totp", data={"ticket": re.search(r'name="ticket" value="([^"]+)"', step.text)
                                                   .group(1), "csrf_token": csrf_in(step.text), "code": code})
    assert again.status_code == 400  # a code works once
    forged = replay.post("/admin/login/totp", data={"ticket": "1.abc.def", "csrf_token": csrf_in(step.text),
                                                    "code": code})
    assert forged.status_code == 400 and "start again" in forged.text


def test_logins_and_changes_are_audited(console):
    console.login("owner")
    with session_scope(console.engine) as session:
        actions = [(e.actor, e.action) for e in session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]
    assert ("cli", "editor.add") in actions and ("cli", "token.create") in actions
    assert ("editor:owner@editors.example", "editor.login") in actions


def test_no_state_change_on_get(console):
    client: TestClient = console.client()
    for path in ("/admin/login", "/admin", "/admin/set-password/x"):
        client.get(path)
    with session_scope(console.engine) as session:
        assert session.execute(select(EditorSession)).first() is None
