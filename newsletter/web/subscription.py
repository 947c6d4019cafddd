"""Public signup pages: the form (also embeddable), double opt-in, confirmation.

Rules that hold on every route: GET never changes state (mail scanners prefetch
links); the only cookie is the signup form's random visitor id (HttpOnly, no personal data),
which binds the form token to the browser; bad input gets the page back with a message
next to the field and 400/422, never a 500; signup answers never tell whether
an address is known. Unsubscribe and preferences are in web/preferences.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import IntegrityError

from newsletter.db import session_scope
from newsletter.delivery.onboarding import queue_latest
from newsletter.subscribers.consent import CONSENT_VERSION, Source, consent_text
from newsletter.subscribers.models import SubscriberStatus
from newsletter.subscribers.service import InvalidInput
from newsletter.subscribers.signup import confirm, find_confirmation
from newsletter.tokens import InvalidToken
from newsletter.web.abuse import HONEYPOT_FIELD, VISITOR_COOKIE, FormTokenError, NotThisVisitor, check_form_token, \
    issue_form_token, visitor_cookie, visitor_id
from newsletter.web.deps import LIST_FIELD, TEXT_FIELD, Ctx, WebContext, form_data, form_schema, origin_of
from newsletter.web.intake import SignupRefused, submit_signup
from newsletter.web.responses import invalid_link, message, page, refused
from newsletter.web.security import post_origin_allowed

log = logging.getLogger(__name__)
router = APIRouter()


def signup_form_values(ctx: WebContext, request: Request, embed: bool = False) -> tuple[dict, str]:
    """What templates/web/_signup_form.html needs, and the Set-Cookie header that binds its token
    to this browser (set or refreshed here). The signup page and every page that ends with the
    "Get the next comparison in your inbox" form use it, so each posts to /subscribe alike."""
    site, web = ctx.settings.site, ctx.settings.web
    visitor = visitor_id(request.cookies.get(VISITOR_COOKIE))
    cookie = visitor_cookie(visitor, int(web.form_max_seconds), site.base_url.startswith("https:"), embed)
    values = {"form_token": issue_form_token(ctx.secret, visitor), "consent_text": consent_text(site.name),
              "consent_version": CONSENT_VERSION, "errors": defaultdict(str),
              "values": {"email": "", "name": "", "topics": []}}
    return values, cookie


def signup_page(ctx: WebContext, request: Request, status: int = 200, errors: dict | None = None,
                values: dict | None = None, headers: dict | None = None, embed: bool = False) -> HTMLResponse:
    """The form, with a token bound to this browser's visitor cookie."""
    form, cookie = signup_form_values(ctx, request, embed)
    form["errors"].update(errors or {})
    form["values"] = values or form["values"]
    return page(ctx.settings.site, "signup.html", status=status, headers={**(headers or {}), "Set-Cookie": cookie},
                title="Subscribe", embed=embed, categories=ctx.categories(), **form)


@router.get("/", response_class=HTMLResponse)
def signup_form(request: Request, ctx: Ctx) -> HTMLResponse:
    return signup_page(ctx, request)


@router.get("/embed", response_class=HTMLResponse)
def signup_embed(request: Request, ctx: Ctx) -> HTMLResponse:
    """The bare form for an <iframe> on a site in [web] embed_origins (docs/web.md has the snippet)."""
    return signup_page(ctx, request, embed=True)


SIGNUP_FIELDS = {"email": TEXT_FIELD, "name": TEXT_FIELD, "topics": LIST_FIELD, "form_token": TEXT_FIELD,
                 HONEYPOT_FIELD: TEXT_FIELD, "embed": TEXT_FIELD}


# A signup's answer leaves no sooner than this after the request came in. Every path does the same
# database work (docs/web.md, "Timing"), but a new address's commit writes its pages and a known
# one's rollback does not: on SQLite 40-60 us of ~2 ms, which the timing test told apart on a
# quiet, fast host (rank-biserial -0.35). Below the floor both wait alike, on the event loop
# (no thread, no CPU); 10 ms is a fifth of the signup's p99 budget at 200 requests/s (issue 18).
SIGNUP_ANSWER_FLOOR = 0.010


@router.post("/subscribe", response_class=HTMLResponse, openapi_extra=form_schema("Signup form", SIGNUP_FIELDS))
async def subscribe(request: Request, ctx: Ctx) -> HTMLResponse:
    """Async only to read the form; the checks and the database work run in a thread
    (`_subscribe`, WebContext.in_thread): on the event loop they made every other request wait (issue 18).
    The fields are in the schema (SIGNUP_FIELDS), not parameters: `form_data` reads them once.
    Answered no sooner than SIGNUP_ANSWER_FLOOR after it arrived."""
    started = time.monotonic()
    try:
        data = await form_data(request)
    except InvalidInput as exc:
        answer = await ctx.in_thread(signup_page, ctx, request, 400, {"form": str(exc)})
    else:
        answer = await ctx.in_thread(_subscribe, request, ctx, data)
    await asyncio.sleep(max(0.0, SIGNUP_ANSWER_FLOOR - (time.monotonic() - started)))
    return answer


def _subscribe(request: Request, ctx: WebContext, data: dict[str, list[str]]) -> HTMLResponse:
    site, web = ctx.settings.site, ctx.settings.web
    first = {key: values[0] for key, values in data.items()}
    embed = first.get("embed") == "1"
    if not post_origin_allowed(ctx.settings, request.headers, request.headers.get("host", "")):
        return refused(site, "it was sent from a page on another site")
    raw_email, raw_name = first.get("email", ""), first.get("name", "")
    # What the form shows again is cut to the field sizes; validation sees the full input.
    values = {"email": raw_email[:254], "name": raw_name[:100], "topics": data.get("topics", [])}
    done = ctx.same_answer("signup", lambda: message(
        site, "Check your inbox", ["If the address can receive our newsletter, a confirmation mail is on its way. "
                                   "Open it and press the button to confirm. Nothing arrives until you do."]))
    if first.get(HONEYPOT_FIELD):
        return done  # a bot filled the hidden field: look the same, do nothing
    try:
        check_form_token(ctx.secret, first.get("form_token", ""), request.cookies.get(VISITOR_COOKIE),
                         web.form_min_seconds, web.form_max_seconds)
    except NotThisVisitor as exc:
        return refused(site, str(exc))
    except FormTokenError as exc:
        return signup_page(ctx, request, 400, {"form": str(exc)}, values, embed=embed)
    try:
        submit_signup(ctx, raw_email, raw_name, values["topics"], origin_of(ctx, request), Source.form)
    except SignupRefused as exc:
        return signup_page(ctx, request, exc.status, exc.errors, values, headers=exc.headers or None, embed=embed)
    return done


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(token: str, ctx: Ctx) -> HTMLResponse:
    site = ctx.settings.site
    with session_scope(ctx.engine) as session:
        try:
            row = find_confirmation(session, ctx.secret, token, ctx.clock())
        except InvalidToken:
            return invalid_link(site)
    what = "your new address" if row.kind == "confirm_change" else "your subscription"
    return message(site, f"Confirm {what}", [f"Press the button to confirm {what} to {site.name}."],
                   action=f"{site.base_url}/confirm/{token}", button="Confirm")


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_post(token: str, request: Request, ctx: Ctx) -> HTMLResponse:
    site = ctx.settings.site
    try:
        with session_scope(ctx.engine) as session:
            change = find_confirmation(session, ctx.secret, token, ctx.clock()).kind == "confirm_change"
            subscriber = confirm(session, ctx.secret, token, ctx.clock(), origin_of(ctx, request),
                                 on_confirmed=lambda session, reader: queue_latest(session, ctx.settings, reader))
            email, active = subscriber.email, subscriber.status == SubscriberStatus.active.value
    except InvalidToken:
        return invalid_link(site)
    except InvalidInput as exc:
        return message(site, "That did not work", [str(exc).removeprefix("email: ").capitalize() + "."],
                       status=409)
    except IntegrityError:
        # Two confirmations raced for the same new address: the database kept one, nothing half-done.
        return message(site, "That did not work", ["That address already has a subscription."], status=409)
    ctx.on_queued()
    if not change:
        return message(site, "You are in", [f"{email} is confirmed. The next issue of {site.name} will reach you."])
    # A new address confirmed: say what the reader's subscription now is (one who left meanwhile gets nothing).
    then = (f"The next issue of {site.name} will reach you there." if active else
            f"You are not subscribed to {site.name}, so no issue will be sent to it.")
    return message(site, "Address changed", [f"{email} is now the address on your record. {then}"])
