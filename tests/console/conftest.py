"""The console in process: the real app (Starlette's TestClient over https, so Secure cookies
travel), on SQLite and PostgreSQL, with one editor per role and one token per scope."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import pytest
from starlette.testclient import TestClient

from newsletter.db import session_scope
from newsletter.editors import accounts, audit, passwords, tokens
from newsletter.editors.roles import Role, Scope
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET

PASSWORD = "a long and sturdy passphrase"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def role_email(role: str) -> str:
    return f"{role}@editors.example"


def csrf_in(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


@dataclass
class Console:
    app: object
    engine: object
    settings: object
    tokens: dict[str, str] = field(default_factory=dict)  # scope -> raw token

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="https://verdicts.example", follow_redirects=False)

    def login(self, role: str | None = None, email: str | None = None, password: str = PASSWORD) -> TestClient:
        client = self.client()
        response = self.post_login(client, email or role_email(role), password)
        assert response.status_code == 303, response.text
        return client

    @staticmethod
    def post_login(client: TestClient, email: str, password: str, **extra):
        token = csrf_in(client.get("/admin/login").text)
        return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token,
                                                 **extra})

    def bearer(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


@functools.cache
def password_hash(role: str) -> str:
    """The Argon2 hash of PASSWORD for one role's editor, made once per test process: hashing is
    deliberately slow (0.2 s of CPU each), and five per test was a third of a console test's time.
    Signing in still verifies against it for real."""
    return passwords.hash_password(PASSWORD)


@pytest.fixture
def console(sample_engine, settings) -> Console:
    with session_scope(sample_engine) as session:
        for role in Role:
            passwords.check_strength(PASSWORD, role_email(role.name))
            editor = accounts.add_editor(session, role_email(role.name), role.name, audit.Actor.cli())
            editor.password_hash = password_hash(role.name)  # what add_editor(..., PASSWORD) stores
            session.add(editor)
        made = {scope.value: tokens.create(session, f"token-{scope.value}", [scope.value], audit.Actor.cli())[1]
                for scope in Scope}
    # schemathesis's in-process client names the host "testserver": let the host check admit it.
    settings = settings.model_copy(update={"web": settings.web.model_copy(update={"allowed_hosts": ["testserver"]})})
    app = create_app(settings, engine=sample_engine, secret=TEST_SECRET, with_sender=False)
    return Console(app, sample_engine, settings, made)
