"""/admin/webhooks: owners register endpoints (the secret shown once), send a test event that a
real local receiver verifies, see each delivery's last answer, and remove endpoints."""

from __future__ import annotations

import re

import pytest

from newsletter.delivery import webhooks_out
from tests.console.conftest import csrf_in
from tests.fakes.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def allow_loopback(console):
    ctx = console.app.state.console
    hooks = ctx.settings.outgoing_webhooks.model_copy(update={"allow_loopback_http": True, "timeout_seconds": 1})
    ctx.settings = ctx.settings.model_copy(update={"outgoing_webhooks": hooks})
    return ctx.settings


def owner_post(client, path, data):
    return client.post(path, data={**data, "csrf_token": csrf_in(client.get("/admin/webhooks").text)})


def add_endpoint(owner, url, events=("issue.started",)):
    answer = owner_post(owner, "/admin/webhooks", {"url": url, "events": list(events), "description": "CRM sync"})
    assert answer.status_code == 200, answer.text
    return re.search(r"whsec_[\w\-]+", answer.text).group(0), answer


@pytest.mark.parametrize("path", ["/admin/webhooks", "/admin/webhooks/1/test", "/admin/webhooks/1/remove"])
def test_webhook_posts_are_for_owners_with_the_session_csrf(console, path):
    data = {"url": "https://hooks.example.com/in", "events": ["vote.recorded"]}
    anonymous = console.client().post(path, data={**data, "csrf_token": "x"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login"
    editor = console.login("editor")
    assert editor.post(path, data={**data, "csrf_token": csrf_in(editor.get("/admin").text)}).status_code == 403
    owner = console.login("owner")
    if path != "/admin/webhooks":
        add_endpoint(owner, "https://hooks.example.com/in")
    for forged in ({}, {"csrf_token": "forged"}):
        assert owner.post(path, data={**data, **forged}).status_code == 403
    assert owner_post(owner, path, data).status_code in (200, 303)


def test_an_owner_registers_an_endpoint_and_a_test_event_arrives_signed(console, receiver):
    settings = allow_loopback(console)
    owner = console.login("owner")
    secret, answer = add_endpoint(owner, receiver.url, ["reader.confirmed", "issue.finished"])
    assert answer.headers["cache-control"] == "no-store" and "reader.confirmed, issue.finished" in answer.text
    page = owner.get("/admin/webhooks").text
    assert secret not in page and receiver.url in page and "CRM sync" in page
    receiver.secret = secret
    endpoint_id = re.search(r"/admin/webhooks/(\d+)/test", page).group(1)
    tested = owner_post(owner, f"/admin/webhooks/{endpoint_id}/test", {})
    assert tested.status_code == 303 and "A test event is queued" in owner.get(tested.headers["location"]).text
    assert webhooks_out.send_due(console.engine, settings).sent == 1
    [got] = receiver.received
    assert got.valid and got.event["type"] == "webhook.test"
    page = owner.get("/admin/webhooks").text
    assert re.search(r"204 at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page) and "sent" in page
    removed = owner_post(owner, f"/admin/webhooks/{endpoint_id}/remove", {})
    assert removed.status_code == 303 and "removed" in owner.get("/admin/webhooks").text


def test_a_failing_receiver_shows_its_status_and_answer(console, receiver):
    settings = allow_loopback(console)
    receiver.mode = "fail"
    owner = console.login("owner")
    add_endpoint(owner, receiver.url)
    endpoint_id = re.search(r"/admin/webhooks/(\d+)/test", owner.get("/admin/webhooks").text).group(1)
    owner_post(owner, f"/admin/webhooks/{endpoint_id}/test", {})
    assert webhooks_out.send_due(console.engine, settings).retry == 1
    page = owner.get("/admin/webhooks").text
    assert "500 at" in page and "receiver is down: try later" in page and "retry" in page


def test_bad_registrations_say_which_field_and_why(console):
    owner = console.login("owner")
    for data, reason in (({"url": "http://hooks.example.com/in", "events": ["vote.recorded"]}, "must start with https://"),
                         ({"url": "http://127.0.0.1:9/in", "events": ["vote.recorded"]}, "must start with https://"),
                         ({"url": "https://hooks.example.com/in", "events": []}, "choose at least one event"),
                         ({"url": "https://hooks.example.com/in", "events": ["boom"]}, "unknown event")):
        answer = owner_post(owner, "/admin/webhooks", data)
        assert answer.status_code == 422 and reason in answer.text, data
    assert owner_post(owner, "/admin/webhooks/999/test", {}).status_code == 422
