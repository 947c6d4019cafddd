"""The fixed command-line interfaces, through the console script's entry point (in this process:
tests/cli_runner.py): editors add (link or --password-stdin), list, remove; tokens create (token
alone on the last line), list, revoke."""

from __future__ import annotations

import os
import subprocess

from starlette.testclient import TestClient

from newsletter.config import load_settings
from newsletter.db import make_engine
from newsletter.web.app import create_app
from tests.cli_runner import run_cli
from tests.conftest import TEST_SECRET, write_config
from tests.console.conftest import csrf_in


def run(args, cwd, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(COLUMNS="200", NEWSLETTER_SECRET_KEY=TEST_SECRET)
    result = run_cli(["-c", "config.toml", *args], cwd, env, stdin)
    if check:
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def test_editors_and_tokens_from_the_command_line(tmp_path, db_url, monkeypatch):
    write_config(tmp_path, db_url)
    run(["db", "upgrade"], tmp_path)
    added = run(["editors", "add", "Chief@Example.com", "--role", "owner"], tmp_path)
    link = added.stdout.strip().splitlines()[-1]
    assert link.startswith("https://verdicts.example/admin/set-password/"), added.stdout
    run(["editors", "add", "viewer@example.com", "--role", "viewer", "--password-stdin"], tmp_path,
        stdin="typed into a pipe, not argv\n")
    weak = run(["editors", "add", "weak@example.com", "--role", "viewer", "--password-stdin"], tmp_path,
               stdin="short\n", check=False)
    assert weak.returncode == 1 and "at least 10 characters" in weak.stderr and "Traceback" not in weak.stderr
    bad_role = run(["editors", "add", "x@example.com", "--role", "boss"], tmp_path, check=False)
    assert bad_role.returncode == 1 and "role must be one of" in bad_role.stderr
    twice = run(["editors", "add", "chief@example.com", "--role", "viewer"], tmp_path, check=False)
    assert twice.returncode == 1 and "already an editor" in twice.stderr

    created = run(["tokens", "create", "--name", "cms", "--scope", "read", "--scope", "comparisons"], tmp_path)
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("wv_") and " " not in token and len(token) > 40
    run(["tokens", "create", "--name", "site", "--scope", "all"], tmp_path)
    unknown = run(["tokens", "create", "--name", "y", "--scope", "write"], tmp_path, check=False)
    assert unknown.returncode == 1 and "unknown scope 'write'" in unknown.stderr

    # What the CLI made works on the web: the link, the piped password, the token.
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", TEST_SECRET)
    settings = load_settings(tmp_path / "config.toml")
    engine = make_engine(settings.database.url)
    client = TestClient(create_app(settings, engine=engine, secret=TEST_SECRET, with_sender=False),
                        base_url="https://verdicts.example", follow_redirects=False)
    path = link.removeprefix("https://verdicts.example")
    form = csrf_in(client.get(path).text)
    assert client.post(path, data={"password": "the owner's passphrase", "password_repeat": "the owner's passphrase",
                                   "csrf_token": form}).status_code == 200
    login = csrf_in(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"email": "viewer@example.com", "password": "typed into a pipe, not argv",
                                             "csrf_token": login}).status_code == 303
    assert client.get("/api/v1/issues", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listed = run(["editors", "list"], tmp_path).stdout
    assert "chief@example.com" in listed and "owner" in listed and "viewer@example.com" in listed
    tokens = run(["tokens", "list"], tmp_path).stdout
    assert "cms" in tokens and "read comparisons" in tokens and token not in tokens
    run(["tokens", "revoke", "cms"], tmp_path)
    assert client.get("/api/v1/issues", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    run(["editors", "remove", "viewer@example.com"], tmp_path)
    assert client.get("/admin").status_code == 303  # the session ended with the account
    assert "removed" in run(["editors", "list"], tmp_path).stdout
    missing = run(["editors", "remove", "nobody@example.com"], tmp_path, check=False)
    assert missing.returncode == 1 and "is not an editor" in missing.stderr
    engine.dispose()
