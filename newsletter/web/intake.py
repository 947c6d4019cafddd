"""One signup path for the form (POST /subscribe) and the API (POST /api/v1/public/subscriptions).

Both check the same fields the same way, count against the same rate limits (per IP, per
network, per address) and end in request_signup: double opt-in, consent evidence, and an
answer that never tells whether the address is known. Only the consent source differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from newsletter.delivery.transports import carries_smtputf8
from newsletter.web.abuse import ThrottleLimit, network_of
from newsletter.subscribers.consent import Origin, Source
from newsletter.subscribers.service import InvalidInput, clean_name, clean_topics, normalize_email
from newsletter.subscribers import hot_paths

if TYPE_CHECKING:
    from newsletter.web.deps import WebContext

HOUR = 3600.0


@dataclass
class SignupRefused(Exception):
    """Nothing was recorded; `errors` names each field (or "form") with a message for people."""

    status: int
    errors: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


def _clean(ctx: "WebContext", raw_email: str, raw_name: str, raw_topics: list[str]) -> tuple[str, str, list[str]]:
    errors, email, name, topics = {}, "", "", []
    try:
        email = normalize_email(raw_email, "email", carries_smtputf8(ctx.settings))
    except InvalidInput as exc:
        errors["email"] = str(exc).removeprefix("email: ").capitalize()
    try:
        name = clean_name(raw_name)
    except InvalidInput as exc:
        errors["name"] = str(exc).removeprefix("name: ").capitalize()
    try:
        known = set(ctx.categories())
        topics = [t for t in clean_topics(raw_topics) if t in known]
    except InvalidInput as exc:
        errors["topics"] = str(exc).removeprefix("topics: ").capitalize()
    if errors:
        raise SignupRefused(422, errors)
    return email, name, topics


def submit_signup(ctx: "WebContext", raw_email: str, raw_name: str, raw_topics: list[str], origin: Origin,
                  source: Source) -> None:
    """Validate, rate-limit and record one signup request, or raise SignupRefused."""
    web = ctx.settings.web
    email, name, topics = _clean(ctx, raw_email, raw_name, raw_topics)
    if web.check_deliverability and not _deliverable(email):
        raise SignupRefused(422, {"email": "That domain does not accept mail"})
    ip = origin.ip or "unknown"
    wait = ctx.throttle.hit([
        ThrottleLimit(f"ip:{ip}", web.signups_per_ip_per_hour, HOUR),
        ThrottleLimit(f"net:{network_of(ip)}", web.signups_per_network_per_hour, HOUR),
        ThrottleLimit(f"addr:{email}", web.signups_per_address_per_hour, HOUR),
    ])
    if wait is not None:
        raise SignupRefused(429, {"form": "Too many attempts. Please wait a while and try again."},
                            {"Retry-After": str(int(wait) + 1)})
    hot_paths.signup(ctx.engine, web, email, name, topics, ctx.clock(), origin, source)
    ctx.on_queued()


def _deliverable(email: str) -> bool:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(email, check_deliverability=True)
    except EmailNotValidError:
        return False
    return True
