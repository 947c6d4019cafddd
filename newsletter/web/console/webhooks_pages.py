"""The owners' page /admin/webhooks: register an endpoint for events (its signing secret is
shown once), remove one, send it a test event, and see each delivery's last answer.

The rules and the queue live in newsletter/delivery/ (webhook_endpoints.py, webhooks_out.py);
the events are emitted where they happen (newsletter/outgoing.py). Every POST checks the
session's CSRF token and is audit-logged in the change's transaction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db import session_scope
from newsletter.delivery import webhook_endpoints
from newsletter.outgoing import EVENTS
from newsletter.web.console.deps import Console, ConsoleContext
from newsletter.web.console.owners_pages import actor_of
from newsletter.web.console.views import Owner, check_csrf, console_router, page

router = console_router()
FormText = Annotated[str, Form(max_length=2000)]
FormList = Annotated[list[str], Form(max_length=20)]
DONE = {"removed": "The endpoint is removed; deliveries still queued for it are skipped.",
        "tested": "A test event is queued; its result shows below within seconds (reload)."}


def webhooks_page(ctx: ConsoleContext, me, status: int = 200, error: str = "", done: str = "",
                  **values) -> HTMLResponse:
    with session_scope(ctx.engine) as session:
        endpoints = webhook_endpoints.endpoints(session)
        deliveries = webhook_endpoints.recent_deliveries(session)
        urls = {endpoint.id: endpoint.url for endpoint in endpoints}
    return page(ctx, "webhooks.html", status, me=me, title="Webhooks", current="webhooks", endpoints=endpoints,
                deliveries=deliveries, urls=urls, events=EVENTS, error=error, done=DONE.get(done, ""),
                loopback=ctx.settings.outgoing_webhooks.allow_loopback_http, **values)


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks(ctx: Console, me: Owner, done: Annotated[str, Query(max_length=20)] = "") -> HTMLResponse:
    return webhooks_page(ctx, me, done=done)


@router.post("/webhooks", response_class=HTMLResponse)
def register(ctx: Console, me: Owner, url: FormText = "", events: FormList = [],  # noqa: B006
             description: FormText = "", csrf_token: FormText = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            endpoint, secret = webhook_endpoints.register(session, url, events, description,
                                                          ctx.settings.outgoing_webhooks, actor_of(me))
            made = {"id": endpoint.id, "url": endpoint.url, "events": endpoint.events}
    except webhook_endpoints.EndpointError as exc:
        return webhooks_page(ctx, me, 422, f"Not added: {exc}", url=url[:2000], chosen=events,
                             description=description[:200])
    return page(ctx, "webhook_created.html", me=me, title="Webhook added", current="webhooks", endpoint=made,
                secret=secret)


def _act(ctx: ConsoleContext, me, csrf_token: str, action, done: str) -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            action(session)
    except webhook_endpoints.EndpointError as exc:
        return webhooks_page(ctx, me, 422, f"Not done: {exc}")
    return RedirectResponse(f"/admin/webhooks?done={done}", status_code=303)


@router.post("/webhooks/{endpoint_id}/remove", response_class=HTMLResponse)
def remove(ctx: Console, me: Owner, endpoint_id: int, csrf_token: FormText = "") -> Response:
    return _act(ctx, me, csrf_token, lambda session: webhook_endpoints.remove(session, endpoint_id, actor_of(me)),
                "removed")


@router.post("/webhooks/{endpoint_id}/test", response_class=HTMLResponse)
def send_test(ctx: Console, me: Owner, endpoint_id: int, csrf_token: FormText = "") -> Response:
    answer = _act(ctx, me, csrf_token,
                  lambda session: webhook_endpoints.queue_test(session, endpoint_id, actor_of(me)), "tested")
    ctx.web.on_queued()  # wake `serve`'s sender: the test goes out now, not at its next poll
    return answer
