"""Public pages: signup with double opt-in, confirmation, unsubscribe (RFC 8058), preferences.

Rules that hold on every route: GET never changes state (mail scanners prefetch
links); the only cookie is the signup form's random visitor id (HttpOnly, no personal data),
which binds the form token to the browser; bad input gets the page back with a message
next to the field and 400/422, never a 500; signup answers never tell whether
an address is known.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery.transports import carries_smtputf8
from newsletter.templating import render
from newsletter.web_security import post_origin_allowed
from subscribers.abuse import HONEYPOT_FIELD, VISITOR_COOKIE, FormTokenError, Limit, NotThisVisitor, RateLimiter, \
    check_form_token, client_address, issue_form_token, network_of, visitor_cookie, visitor_id
from subscribers.consent import CONSENT_VERSION, Origin, Source, consent_text
from subscribers.intake import SignupRefused, submit_signup
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic
from subscribers.service import InvalidInput, clean_topics, link_holder, normalize_email
from subscribers.signup import confirm, find_confirmation, request_email_change, unsubscribe, update_preferences
from subscribers.tokens import InvalidToken, LinkSubject, Purpose, make_token, read_token

log = logging.getLogger(__name__)
MAX_FIELD = 1000  # any single form value longer than this is refused outright

# Form fields are declared (FastAPI Form parameters) so the OpenAPI schema describes them; the
# handlers still read the raw form themselves (repeated fields, length limits, friendly errors).
FormText = Annotated[str, Form()]
FormList = Annotated[list[str], Form()]


@dataclass
class WebContext:
    settings: Settings
    engine: Engine
    secret: str
    categories: Callable[[], list[str]]
    limiter: RateLimiter = field(default_factory=RateLimiter)
    clock: Callable[[], datetime] = utcnow
    on_queued: Callable[[], None] = lambda: None  # wakes the background sender


def make_router(ctx: WebContext) -> APIRouter:
    router = APIRouter()
    site = ctx.settings.site
    web = ctx.settings.web

    def page(template: str, status: int = 200, headers: dict | None = None, **values) -> HTMLResponse:
        values.setdefault("title", values.get("heading", site.name))
        html = render(f"web/{template}", {"site": site, **values})
        return HTMLResponse(html, status_code=status, headers=headers)

    def message(heading: str, paragraphs: list[str], status: int = 200, **extra) -> HTMLResponse:
        return page("message.html", status=status, heading=heading, paragraphs=paragraphs, **extra)

    def invalid_link() -> HTMLResponse:
        return message("This link does not work",
                       ["It may be mistyped, expired or already used. Links in our mails are personal; "
                        "use the newest mail you got from us, or subscribe again."], status=400,
                       links=[("Go to the signup page", f"{site.base_url}/")])

    def client_ip(request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.getlist("x-forwarded-for"), web.trusted_proxy_hops)

    def refused(reason: str) -> HTMLResponse:
        """A post that another site drove through the visitor's browser, or a form from elsewhere."""
        return message("This form cannot be sent from here",
                       [f"We refused it: {reason}. Nothing was stored. Open the signup page on our site "
                        "and send the form from there."], status=403,
                       links=[("Go to the signup page", f"{site.base_url}/")])

    def origin_of(request: Request) -> Origin:
        """IP and User-Agent for the consent record (cleaned and cut to size by record_consent)."""
        return Origin(ip=client_ip(request), user_agent=request.headers.get("user-agent", ""))

    def signup_page(request: Request, status: int = 200, errors: dict | None = None, values: dict | None = None,
                    headers: dict | None = None, embed: bool = False) -> HTMLResponse:
        """The form, with a token bound to this browser's visitor cookie (set or refreshed here)."""
        visitor = visitor_id(request.cookies.get(VISITOR_COOKIE))
        cookie = visitor_cookie(visitor, int(web.form_max_seconds), site.base_url.startswith("https:"), embed)
        return page("signup.html", status=status, headers={**(headers or {}), "Set-Cookie": cookie},
                    title="Subscribe", embed=embed,
                    form_token=issue_form_token(ctx.secret, visitor), categories=ctx.categories(),
                    consent_text=consent_text(site.name), consent_version=CONSENT_VERSION,
                    errors=defaultdict(str, errors or {}),
                    values=values or {"email": "", "name": "", "topics": []})

    async def form_data(request: Request) -> dict[str, list[str]]:
        form = await request.form()
        data: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if not isinstance(value, str):
                raise InvalidInput(f"{key}: files are not accepted")
            if len(value) > MAX_FIELD:
                raise InvalidInput(f"{key}: too long")
            data.setdefault(key, []).append(value)
        return data

    @router.get("/", response_class=HTMLResponse)
    def signup_form(request: Request) -> HTMLResponse:
        return signup_page(request)

    @router.get("/embed", response_class=HTMLResponse)
    def signup_embed(request: Request) -> HTMLResponse:
        """The bare form for an <iframe> on a site in [web] embed_origins (docs/web.md has the snippet)."""
        return signup_page(request, embed=True)

    @router.post("/subscribe", response_class=HTMLResponse)
    async def subscribe(request: Request, email: FormText = "", name: FormText = "", topics: FormList = [],
                        form_token: FormText = "", website: FormText = "",
                        embed: FormText = "") -> HTMLResponse:  # noqa: B006
        try:
            data = await form_data(request)
        except InvalidInput as exc:
            return signup_page(request, 400, {"form": str(exc)})
        first = {key: values[0] for key, values in data.items()}
        embed = first.get("embed") == "1"
        if not post_origin_allowed(ctx.settings, request.headers, request.headers.get("host", "")):
            return refused("it was sent from a page on another site")
        raw_email, raw_name = first.get("email", ""), first.get("name", "")
        # What the form shows again is cut to the field sizes; validation sees the full input.
        values = {"email": raw_email[:254], "name": raw_name[:100], "topics": data.get("topics", [])}
        done = message("Check your inbox",
                       ["If the address can receive our newsletter, a confirmation mail is on its way. "
                        "Open it and press the button to confirm. Nothing arrives until you do."])
        if first.get(HONEYPOT_FIELD):
            return done  # a bot filled the hidden field: look the same, do nothing
        try:
            check_form_token(ctx.secret, first.get("form_token", ""), request.cookies.get(VISITOR_COOKIE),
                             web.form_min_seconds, web.form_max_seconds)
        except NotThisVisitor as exc:
            return refused(str(exc))
        except FormTokenError as exc:
            return signup_page(request, 400, {"form": str(exc)}, values, embed=embed)
        try:
            submit_signup(ctx, raw_email, raw_name, values["topics"], origin_of(request), Source.form)
        except SignupRefused as exc:
            return signup_page(request, exc.status, exc.errors, values, headers=exc.headers or None, embed=embed)
        return done

    @router.get("/confirm/{token}", response_class=HTMLResponse)
    def confirm_page(token: str) -> HTMLResponse:
        with session_scope(ctx.engine) as session:
            try:
                row = find_confirmation(session, ctx.secret, token, ctx.clock())
            except InvalidToken:
                return invalid_link()
        what = "your new address" if row.kind == "confirm_change" else "your subscription"
        return message(f"Confirm {what}", [f"Press the button to confirm {what} to {site.name}."],
                       action=f"{site.base_url}/confirm/{token}", button="Confirm")

    @router.post("/confirm/{token}", response_class=HTMLResponse)
    def confirm_post(token: str, request: Request) -> HTMLResponse:
        try:
            with session_scope(ctx.engine) as session:
                subscriber = confirm(session, ctx.secret, token, ctx.clock(), origin_of(request))
                email = subscriber.email
        except InvalidToken:
            return invalid_link()
        except InvalidInput as exc:
            return message("That did not work", [str(exc).removeprefix("email: ").capitalize() + "."], status=409)
        except IntegrityError:
            # Two confirmations raced for the same new address: the database kept one, nothing half-done.
            return message("That did not work", ["That address already has a subscription."], status=409)
        ctx.on_queued()
        return message("You are in", [f"{email} is confirmed. The next issue of {site.name} will reach you."])

    def linked(token: str, purpose: Purpose) -> LinkSubject | None:
        """Who a link names, only while that very reader exists (id and token_key)."""
        try:
            subject = read_token(ctx.secret, purpose, token)
        except InvalidToken:
            return None
        with session_scope(ctx.engine) as session:
            return subject if link_holder(session, subject) is not None else None

    def subscriber_from(token: str, purpose: Purpose) -> int | None:
        subject = linked(token, purpose)
        return subject.subscriber_id if subject is not None else None

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe_page(token: str) -> HTMLResponse:
        subject = linked(token, Purpose.unsubscribe)
        if subject is None:
            return invalid_link()
        prefs_token = make_token(ctx.secret, Purpose.preferences, subject.subscriber_id, subject.key)
        prefs = f"{site.base_url}/preferences/{prefs_token}"
        return message("Unsubscribe?", [f"Press the button and you get no more issues of {site.name}."],
                       action=f"{site.base_url}/unsubscribe/{token}", button="Unsubscribe",
                       hidden=[("source", "page")],
                       links=[("Rather choose topics or pause for a while", prefs)])

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_post(token: str, request: Request,
                               list_unsubscribe: Annotated[str, Form(alias="List-Unsubscribe")] = "",
                               source: FormText = "") -> HTMLResponse:
        # RFC 8058: a mail client POSTs "List-Unsubscribe=One-Click" with no cookies and no CSRF
        # token; answer 200 without a redirect, every time (idempotent).
        subscriber_id = subscriber_from(token, Purpose.unsubscribe)
        if subscriber_id is None:
            return invalid_link()
        try:
            data = await form_data(request)
        except InvalidInput:
            data = {}
        one_click = data.get("List-Unsubscribe", [""])[0] == "One-Click"
        with session_scope(ctx.engine) as session:
            unsubscribe(session, subscriber_id, Source.link, ctx.clock(), goodbye=not one_click,
                        detail="unsubscribe link, RFC 8058 one-click" if one_click else "unsubscribe link, page",
                        origin=origin_of(request))
        ctx.on_queued()
        return message("You are unsubscribed",
                       [f"You get no more issues of {site.name}. Sorry to see you go."],
                       links=[("Subscribe again", f"{site.base_url}/")])

    def preferences_view(token: str, subscriber_id: int, status: int = 200, notice: str = "",
                         errors: dict | None = None, headers: dict | None = None) -> HTMLResponse:
        with session_scope(ctx.engine) as session:
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is None:
                return invalid_link()
            topics = list(session.exec(select(SubscriberTopic.category)
                                       .where(SubscriberTopic.subscriber_id == subscriber_id)).all())
        if subscriber.status != SubscriberStatus.active.value:
            return message("No active subscription",
                           [f"This address does not currently get {site.name}."],
                           links=[("Subscribe again", f"{site.base_url}/")])
        paused = subscriber.paused_until
        paused_until = (paused.astimezone(site.zone).strftime("%d %B %Y")
                        if paused and paused > ctx.clock() else "")
        return page("preferences.html", status=status, headers=headers, title="Preferences", subscriber=subscriber,
                    topics=topics, categories=sorted(set(ctx.categories()) | set(topics)),
                    paused_until=paused_until, notice=notice, errors=defaultdict(str, errors or {}),
                    action=f"{site.base_url}/preferences/{token}")

    @router.get("/preferences/{token}", response_class=HTMLResponse)
    def preferences_page(token: str) -> HTMLResponse:
        subscriber_id = subscriber_from(token, Purpose.preferences)
        if subscriber_id is None:
            return invalid_link()
        return preferences_view(token, subscriber_id)

    def change_address(request: Request, token: str, subscriber_id: int, raw: str) -> HTMLResponse:
        """Queue a confirmation to the new address; throttled per reader and per IP so one leaked
        preferences link cannot make us mail a list of strangers."""
        try:
            new_email = normalize_email(raw, "new_email", carries_smtputf8(ctx.settings))
        except InvalidInput as exc:
            return preferences_view(token, subscriber_id, 422,
                                    errors={"new_email": str(exc).removeprefix("new_email: ").capitalize()})
        wait = ctx.limiter.hit([
            Limit(f"change:{subscriber_id}", web.address_changes_per_reader_per_hour, HOUR),
            Limit(f"change-ip:{client_ip(request)}", web.address_changes_per_ip_per_hour, HOUR),
        ])
        if wait is not None:
            return preferences_view(token, subscriber_id, 429, headers={"Retry-After": str(int(wait) + 1)},
                                    errors={"new_email": "Too many address changes. Please wait a while "
                                                         "and try again."})
        with session_scope(ctx.engine) as session:
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is None or subscriber.status != SubscriberStatus.active.value:
                return invalid_link()
            request_email_change(session, web, subscriber, new_email, ctx.clock(), origin_of(request))
        ctx.on_queued()
        return preferences_view(token, subscriber_id,
                                notice=f"We sent a confirmation to {new_email}. Your address changes "
                                       "once you confirm it there.")

    @router.post("/preferences/{token}", response_class=HTMLResponse)
    async def preferences_post(token: str, request: Request, action: FormText = "save", topics: FormList = [],
                               pause_weeks: FormText = "0", new_email: FormText = "") -> HTMLResponse:  # noqa: B006
        subscriber_id = subscriber_from(token, Purpose.preferences)
        if subscriber_id is None:
            return invalid_link()
        try:
            data = await form_data(request)
        except InvalidInput as exc:
            return preferences_view(token, subscriber_id, 400, errors={"form": str(exc)})
        action = data.get("action", ["save"])[0]
        now = ctx.clock()
        if action == "unsubscribe":
            with session_scope(ctx.engine) as session:
                unsubscribe(session, subscriber_id, Source.link, now, goodbye=True, detail="preferences link",
                            origin=origin_of(request))
            ctx.on_queued()
            return message("You are unsubscribed", [f"You get no more issues of {site.name}."],
                           links=[("Subscribe again", f"{site.base_url}/")])
        if action == "change_email":
            return change_address(request, token, subscriber_id, data.get("new_email", [""])[0])
        try:
            known = set(ctx.categories())
            # Only what the form carried changes: no topics field (and no marker) keeps the topics,
            # "keep" or no pause field keeps a running pause.
            shown = "topics" in data or "topics_shown" in data
            topics = [t for t in clean_topics(data.get("topics", [])) if t in known] if shown else None
            pause = data.get("pause_weeks", ["keep"])[0]
            pause_weeks = None if pause == "keep" else int(pause or 0)
        except (InvalidInput, ValueError):
            return preferences_view(token, subscriber_id, 422, errors={"pause_weeks": "Choose a number of weeks"})
        try:
            with session_scope(ctx.engine) as session:
                subscriber = session.get(Subscriber, subscriber_id)
                if subscriber is None or subscriber.status != SubscriberStatus.active.value:
                    return invalid_link()
                update_preferences(session, subscriber, topics, pause_weeks, now, origin_of(request))
        except InvalidInput as exc:
            return preferences_view(token, subscriber_id, 422,
                                    errors={"pause_weeks": str(exc).removeprefix("pause: ").capitalize()})
        return preferences_view(token, subscriber_id, notice="Saved.")

    return router

