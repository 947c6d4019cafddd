"""Idempotency-Key on API writes, through the real app on SQLite and PostgreSQL: a retry with
the same key and body gets the first answer without a second write; another body with the key
is refused; answers that did not write are not kept; the key is per token and lasts 24 hours."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import func, select

from newsletter.db import session_scope, utcnow
from newsletter.editors import idempotency
from newsletter.editors.models import AuditEntry
from newsletter.editors.sessions import hash_secret
from tests.console.test_authorization import SAMPLE_COMPARISON

PATH = "/api/v1/comparisons/alpha-vs-beta"


def writes(console) -> int:
    with session_scope(console.engine) as session:
        return session.exec(select(func.count()).select_from(AuditEntry)
                            .where(AuditEntry.action == "comparison.put")).one()


def put(console, key: str | None, body=None, scope="comparisons"):
    headers = {**console.bearer(scope), **({"Idempotency-Key": key} if key is not None else {})}
    return console.client().put(PATH, json=body or SAMPLE_COMPARISON, headers=headers)


def test_a_retry_with_the_same_key_replays_the_first_answer(console):
    first = put(console, "key-1")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = put(console, "key-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"].startswith("application/json")
    assert writes(console) == 1
    # Without a key, or with a new one, the write runs again (a PUT of the same body: 200 now).
    assert put(console, None).status_code == 200 and put(console, "key-2").status_code == 200
    assert writes(console) == 3


def test_the_same_key_with_another_body_is_refused(console):
    assert put(console, "key-1").status_code == 201
    changed = {**SAMPLE_COMPARISON, "title": "Alpha vs Beta, again"}
    answer = put(console, "key-1", changed)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in answer.json()["error"]["fields"]
    assert writes(console) == 1


def test_keys_belong_to_one_token(console):
    assert put(console, "shared").status_code == 201
    other = put(console, "shared", scope="all")
    assert other.status_code == 200 and "idempotent-replayed" not in other.headers
    assert writes(console) == 2


def test_answers_that_wrote_nothing_are_not_kept(console):
    refused = put(console, "key-1", scope="read")  # 403: this token may not write comparisons
    assert refused.status_code == 403
    anonymous = console.client().put(PATH, json=SAMPLE_COMPARISON, headers={"Idempotency-Key": "key-1"})
    assert anonymous.status_code == 401
    forged = console.client().put(PATH, json=SAMPLE_COMPARISON,
                                  headers={"Idempotency-Key": "key-1", "Authorization": "Bearer wv_nope"})
    assert forged.status_code == 401
    with session_scope(console.engine) as session:
        assert session.exec(select(func.count()).select_from(idempotency.IdempotencyKey)).one() == 0


def test_a_bad_key_names_the_header(console):
    for key in ("", "with space", "x" * 256, "tab\there"):
        answer = put(console, key)
        assert answer.status_code == 422, key
        assert answer.json()["error"]["code"] == "invalid_request"
        assert answer.json()["error"]["fields"].keys() == {"Idempotency-Key"}
    assert writes(console) == 0


def test_a_key_still_running_answers_409_and_an_old_one_expires(console):
    token_hash = hash_secret(console.tokens["comparisons"])
    assert idempotency.begin(console.engine, token_hash, "busy", "whatever") is not None
    busy = put(console, "busy")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_key_in_progress"
    assert busy.headers["retry-after"] == "2"
    assert put(console, "old").status_code == 201
    with session_scope(console.engine) as session:
        session.execute(update(idempotency.IdempotencyKey).where(idempotency.IdempotencyKey.key == "old")
                        .values(created_at=utcnow() - timedelta(hours=25)))
    later = put(console, "old")
    assert later.status_code == 200 and "idempotent-replayed" not in later.headers  # ran again
    assert writes(console) == 2


def test_the_public_signup_ignores_the_key(console):
    for _ in range(2):
        answer = console.client().post("/api/v1/public/subscriptions", json={"email": "reader@example.com"},
                                       headers={"Idempotency-Key": "k", "Authorization": "Bearer x"})
        assert answer.status_code == 202 and "idempotent-replayed" not in answer.headers


def test_the_app_starts_and_stops_with_the_middleware(console):
    """Lifespan scopes carry no headers: the middleware must pass them by (serve would not start)."""
    from starlette.testclient import TestClient

    with TestClient(console.app, base_url="https://verdicts.example") as client:
        answer = client.put(PATH, json=SAMPLE_COMPARISON, headers={**console.bearer("all"), "Idempotency-Key": "k"})
        assert answer.status_code == 201
