"""Pages behind a reader's personal link: unsubscribe (RFC 8058 one-click) and preferences.

GET never changes state (mail scanners prefetch links); a link only works while the reader it
names exists (id and token_key), so an old link of a forgotten reader opens nothing.
"""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from newsletter.db import session_scope
from newsletter.delivery.transports import carries_smtputf8
from newsletter.subscribers.consent import Source
from newsletter.subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic
from newsletter.subscribers.service import InvalidInput, clean_topics, link_holder, normalize_email
from newsletter.subscribers.hot_paths import unsubscribe_link
from newsletter.subscribers.signup import request_email_change, unsubscribe, update_preferences
from newsletter.tokens import InvalidToken, LinkSubject, Purpose, make_token
from newsletter.web.abuse import HOUR, ThrottleLimit
from newsletter.web.deps import TEXT_FIELD, Ctx, FormList, FormText, WebContext, client_ip, form_data, form_schema, \
    origin_of
from newsletter.web.responses import invalid_link, message, page, read_link

router = APIRouter()


def linked(ctx: WebContext, token: str, purpose: Purpose) -> LinkSubject | None:
    """Who a link names, only while that very reader exists (id and token_key); a test copy's
    link raises FromTestCopy (app.py answers it)."""
    try:
        subject = read_link(ctx.secret, purpose, token)
    except InvalidToken:
        return None
    with session_scope(ctx.engine) as session:
        return subject if link_holder(session, subject) is not None else None


def subscriber_from(ctx: WebContext, token: str, purpose: Purpose) -> int | None:
    subject = linked(ctx, token, purpose)
    return subject.subscriber_id if subject is not None else None


def unsubscribed(ctx: WebContext, extra: str = "") -> HTMLResponse:
    site = ctx.settings.site
    return message(site, "You are unsubscribed", [f"You get no more issues of {site.name}.{extra}"],
                   links=[("Subscribe again", f"{site.base_url}/")])


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, ctx: Ctx) -> HTMLResponse:
    site = ctx.settings.site
    subject = linked(ctx, token, Purpose.unsubscribe)
    if subject is None:
        return invalid_link(site)
    prefs_token = make_token(ctx.secret, Purpose.preferences, subject.subscriber_id, subject.key)
    prefs = f"{site.base_url}/preferences/{prefs_token}"
    return message(site, "Unsubscribe?", [f"Press the button and you get no more issues of {site.name}."],
                   action=f"{site.base_url}/unsubscribe/{token}", button="Unsubscribe",
                   hidden=[("source", "page")],
                   links=[("Rather choose topics or pause for a while", prefs)])


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, openapi_extra=form_schema(
    "Unsubscribe form", {"List-Unsubscribe": TEXT_FIELD, "source": TEXT_FIELD}))
async def unsubscribe_post(token: str, request: Request, ctx: Ctx) -> HTMLResponse:
    """Async only to read the form; the database work runs in a thread (WebContext.in_thread; on
    the event loop it made every other request wait: issue 18). RFC 8058's `List-Unsubscribe=One-Click` and the
    page's `source` are in the schema, not parameters: `form_data` reads them once."""
    try:
        data = await form_data(request)
    except InvalidInput:
        data = {}
    return await ctx.in_thread(_unsubscribe, token, request, ctx, data)


def _unsubscribe(token: str, request: Request, ctx: WebContext, data: dict[str, list[str]]) -> HTMLResponse:
    # RFC 8058: a mail client POSTs "List-Unsubscribe=One-Click" with no cookies and no CSRF
    # token; answer 200 without a redirect, every time (idempotent).
    # One transaction, on PostgreSQL one statement (subscribers/hot_paths.py): at 200 requests/s
    # each round trip holds a pooled connection and waits for a core (issue 18).
    try:
        subject = read_link(ctx.secret, Purpose.unsubscribe, token)
    except InvalidToken:
        return invalid_link(ctx.settings.site)
    one_click = data.get("List-Unsubscribe", [""])[0] == "One-Click"
    if not unsubscribe_link(ctx.engine, subject, ctx.clock(), goodbye=not one_click,
                            detail="unsubscribe link, RFC 8058 one-click" if one_click else "unsubscribe link, page",
                            origin=origin_of(ctx, request)):
        return invalid_link(ctx.settings.site)
    ctx.on_queued()
    return ctx.same_answer("unsubscribed", lambda: unsubscribed(ctx, " Sorry to see you go."))


def preferences_view(ctx: WebContext, token: str, subscriber_id: int, status: int = 200, notice: str = "",
                     errors: dict | None = None, headers: dict | None = None) -> HTMLResponse:
    site = ctx.settings.site
    with session_scope(ctx.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return invalid_link(site)
        topics = list(session.exec(select(SubscriberTopic.category)
                                   .where(SubscriberTopic.subscriber_id == subscriber_id)).all())
    if subscriber.status != SubscriberStatus.active.value:
        return message(site, "No active subscription",
                       [f"This address does not currently get {site.name}."],
                       links=[("Subscribe again", f"{site.base_url}/")])
    paused = subscriber.paused_until
    paused_until = (paused.astimezone(site.zone).strftime("%d %B %Y")
                    if paused and paused > ctx.clock() else "")
    return page(site, "preferences.html", status=status, headers=headers, title="Preferences",
                subscriber=subscriber, topics=topics, categories=sorted(set(ctx.categories()) | set(topics)),
                paused_until=paused_until, notice=notice, errors=defaultdict(str, errors or {}),
                action=f"{site.base_url}/preferences/{token}")


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(token: str, ctx: Ctx) -> HTMLResponse:
    subscriber_id = subscriber_from(ctx, token, Purpose.preferences)
    if subscriber_id is None:
        return invalid_link(ctx.settings.site)
    return preferences_view(ctx, token, subscriber_id)


def change_address(ctx: WebContext, request: Request, token: str, subscriber_id: int, raw: str) -> HTMLResponse:
    """Queue a confirmation to the new address; throttled per reader and per IP so one leaked
    preferences link cannot make us mail a list of strangers."""
    web = ctx.settings.web
    try:
        new_email = normalize_email(raw, "new_email", carries_smtputf8(ctx.settings))
    except InvalidInput as exc:
        return preferences_view(ctx, token, subscriber_id, 422,
                                errors={"new_email": str(exc).removeprefix("new_email: ").capitalize()})
    wait = ctx.throttle.hit([
        ThrottleLimit(f"change:{subscriber_id}", web.address_changes_per_reader_per_hour, HOUR),
        ThrottleLimit(f"change-ip:{client_ip(ctx, request)}", web.address_changes_per_ip_per_hour, HOUR),
    ])
    if wait is not None:
        return preferences_view(ctx, token, subscriber_id, 429, headers={"Retry-After": str(int(wait) + 1)},
                                errors={"new_email": "Too many address changes. Please wait a while "
                                                     "and try again."})
    with session_scope(ctx.engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None or subscriber.status != SubscriberStatus.active.value:
            return invalid_link(ctx.settings.site)
        request_email_change(session, web, subscriber, new_email, ctx.clock(), origin_of(ctx, request))
    ctx.on_queued()
    return preferences_view(ctx, token, subscriber_id,
                            notice=f"We sent a confirmation to {new_email}. Your address changes "
                                   "once you confirm it there.")


def save_preferences(ctx: WebContext, request: Request, token: str, subscriber_id: int,
                     data: dict[str, list[str]]) -> HTMLResponse:
    """Only what the form carried changes: no topics field (and no marker) keeps the topics,
    "keep" or no pause field keeps a running pause."""
    try:
        known = set(ctx.categories())
        shown = "topics" in data or "topics_shown" in data
        topics = [t for t in clean_topics(data.get("topics", [])) if t in known] if shown else None
        pause = data.get("pause_weeks", ["keep"])[0]
        pause_weeks = None if pause == "keep" else int(pause or 0)
    except (InvalidInput, ValueError):
        return preferences_view(ctx, token, subscriber_id, 422, errors={"pause_weeks": "Choose a number of weeks"})
    try:
        with session_scope(ctx.engine) as session:
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is None or subscriber.status != SubscriberStatus.active.value:
                return invalid_link(ctx.settings.site)
            update_preferences(session, subscriber, topics, pause_weeks, ctx.clock(), origin_of(ctx, request))
    except InvalidInput as exc:
        return preferences_view(ctx, token, subscriber_id, 422,
                                errors={"pause_weeks": str(exc).removeprefix("pause: ").capitalize()})
    return preferences_view(ctx, token, subscriber_id, notice="Saved.")


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def preferences_post(token: str, request: Request, ctx: Ctx, action: FormText = "save",
                           topics: FormList = [], pause_weeks: FormText = "0",
                           new_email: FormText = "") -> HTMLResponse:  # noqa: B006
    """Async only to read the form; the database work runs in the threadpool (issue 18)."""
    try:
        data: dict[str, list[str]] | InvalidInput = await form_data(request)
    except InvalidInput as exc:
        data = exc
    return await run_in_threadpool(_preferences, token, request, ctx, data)


def _preferences(token: str, request: Request, ctx: WebContext, data: dict[str, list[str]] | InvalidInput
                 ) -> HTMLResponse:
    subscriber_id = subscriber_from(ctx, token, Purpose.preferences)
    if subscriber_id is None:
        return invalid_link(ctx.settings.site)
    if isinstance(data, InvalidInput):
        return preferences_view(ctx, token, subscriber_id, 400, errors={"form": str(data)})
    action = data.get("action", ["save"])[0]
    if action == "unsubscribe":
        with session_scope(ctx.engine) as session:
            unsubscribe(session, subscriber_id, Source.link, ctx.clock(), goodbye=True, detail="preferences link",
                        origin=origin_of(ctx, request))
        ctx.on_queued()
        return unsubscribed(ctx)
    if action == "change_email":
        return change_address(ctx, request, token, subscriber_id, data.get("new_email", [""])[0])
    if action != "save":  # not one of this page's buttons: it answered "Saved." (outside trial)
        return preferences_view(ctx, token, subscriber_id, 400,
                                errors={"form": "that is not one of this page's buttons; nothing was changed"})
    return save_preferences(ctx, request, token, subscriber_id, data)

