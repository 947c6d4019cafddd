"""What the webhook route does the same for every provider: unknown provider 404, a provider
without its secret 503, deep, huge and malformed bodies a 4xx and never a 500."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
import requests
from fastapi.testclient import TestClient

from newsletter.config import load_settings
from newsletter.feedback.webhooks import providers
from newsletter.feedback.webhooks.ses import SesWebhook
from newsletter.web.webhooks import MAX_BODY
from tests.conftest import write_config
from tests.feedback.conftest import Hooks


PROVIDERS = ["postmark", "sendgrid", "mailgun", "resend", "ses"]
DEEP = b"[" * 100_000 + b"]" * 100_000


def _signed(hooks: Hooks, provider: str, body: bytes) -> tuple[dict, bytes]:
    """Headers (and body) with which `provider` would post `body` correctly signed."""
    if provider == "postmark":
        return {"Authorization": "Basic " + base64.b64encode(":".join(hooks.postmark_auth).encode()).decode()}, body
    if provider == "sendgrid":
        return hooks.sendgrid_headers(body), body
    if provider == "resend":
        return hooks.svix_headers(body, f"msg_{secrets.token_hex(8)}"), body
    return {"Content-Type": "application/json"}, body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_deep_huge_and_malformed_bodies_get_a_4xx_never_a_500(hooks_lite, provider):
    # On an allowed host ("testserver" is not one): else every answer is the host check's 400.
    client = TestClient(hooks_lite.live.app, base_url="http://localhost", raise_server_exceptions=False)
    url = f"/webhooks/{provider}"
    before = hooks_lite.snapshot()
    bodies = [
        DEEP,  # 100k nested arrays
        b'{"a":' * 50 + b"1" + b"}" * 50,  # parseable, but deeper than any real payload
        b"[" + b"9" * 5000 + b"]",  # an integer beyond Python's conversion limit
        b"\xff\xfe not json",
    ]
    for body in bodies:
        headers, data = _signed(hooks_lite, provider, body)
        answer = client.post(url, content=data, headers=headers)
        assert 400 <= answer.status_code < 500, (provider, body[:40], answer.status_code, answer.text)
        assert "error" in answer.json()  # answered by the route, not by a middleware in front of it
    # Valid JSON with fields of the wrong types: whatever the answer, never a 500 and no change.
    for odd in [b'{"signature": [], "event-data": {"event": "failed", "id": {"x": [1]}, "tags": [{"name": {}}]}}',
                json.dumps([{"event": "bounce", "email": ["x"], "timestamp": 1e308, "RecordType": 7, "type": {},
                             "data": [], "event-data": {"id": []}, "Message": 5}]).encode()]:
        assert client.post(url, content=odd, headers=_signed(hooks_lite, provider, odd)[0]).status_code < 500
    # Over the limit: refused by the declared length, and by counting when none is declared.
    big = b" " * (MAX_BODY + 1)
    assert client.post(url, content=big).status_code == 413
    assert client.post(url, content=iter([b" " * 65536] * (MAX_BODY // 65536 + 1))).status_code == 413
    assert hooks_lite.snapshot() == before


def test_unconfigured_provider_answers_503_and_unknown_404(live_factory):
    live = live_factory(None)
    assert requests.post(f"{live.url}/webhooks/mailgun", json={}, timeout=10).status_code == 503
    assert requests.post(f"{live.url}/webhooks/ses", data=b"{}", timeout=10).status_code == 503
    assert requests.post(f"{live.url}/webhooks/mandrill", json={}, timeout=10).status_code == 404


def test_the_registry_names_every_provider_and_takes_replacements_by_name(tmp_path):
    settings = load_settings(write_config(tmp_path, extra='[webhooks.ses]\ntopic_arn = "arn:aws:sns:eu-west-1:1:t"\n'))
    registry = providers(settings)
    assert sorted(registry) == sorted(PROVIDERS)
    assert all(provider.name == name for name, provider in registry.items())
    assert [name for name, provider in registry.items() if provider.configured()] == ["ses"]
    own = SesWebhook(settings.webhooks.ses, fetch_cert=lambda url: b"")
    assert providers(settings, ses=own)["ses"] is own
    with pytest.raises(ValueError, match="mandrill"):
        providers(settings, mandrill=own)
