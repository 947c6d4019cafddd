"""The mails to one subscriber: confirmation, welcome, goodbye.

Each kind is compiled once per process (Jinja → MJML → HTML with slots), like
an issue. They are rows of the transactional queue, sent by mailqueue.py; a
confirmation's token is made there, at send time, and only its hash is written
back, so no raw token ever rests in the database.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from newsletter.config import Settings
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.compose import DELIVERY_HEADER, assemble, build_template, message_id
from newsletter.mail.compile import CompiledEmail, compile_email
from newsletter.issues.view import site_view
from newsletter.mail.dkim import signer_for
from newsletter.mail.addresses import recipient_address
from newsletter.mail.headers import domain_of
from newsletter.mail.mime import MessageTemplate
from newsletter.mail.verp import envelope_sender
from newsletter.mail.slots import SlotMarker
from newsletter.templating import render
from newsletter.subscribers.models import TransactionalMail
from newsletter.subscribers.signup import CONFIRM_KINDS


def _texts(kind: str, name: str, slot: SlotMarker) -> dict:
    """Wording of each kind. Short and plain: the confirmation carries no marketing content."""
    if kind == "confirm":
        return dict(
            subject=f"Confirm your subscription to {name}",
            preheader="One click to confirm. If you did not ask for this, ignore this mail.",
            kicker="Please confirm",
            heading=f"Confirm your subscription to {name}",
            paragraphs=[f"Someone, hopefully you, asked to get {name} at {slot('email')}.",
                        "Open the link and press the confirm button to start receiving it."],
            button_label="Confirm my subscription", button_url=slot("action_url"),
            after_button="If you did not ask for this, ignore this mail: without confirmation you get nothing "
                         "more from us. The link expires in two days.")
    if kind == "confirm_change":
        return dict(
            subject=f"Confirm your new address for {name}",
            preheader="Confirm the new address for your subscription.",
            kicker="Please confirm",
            heading="Confirm your new address",
            paragraphs=[f"Someone asked to move a {name} subscription to {slot('email')}.",
                        "Open the link and press the confirm button to switch."],
            button_label="Confirm my new address", button_url=slot("action_url"),
            after_button="If you did not ask for this, ignore this mail and nothing changes.")
    if kind == "welcome":
        return dict(
            subject=f"Welcome to {name}",
            preheader="Your subscription is confirmed.",
            kicker="Welcome",
            heading="You are subscribed",
            paragraphs=[f"Thanks for confirming. {name} arrives once a week with that week's "
                        "side-by-side comparisons and the panel's verdicts.",
                        "You can choose topics or pause the newsletter at any time."],
            button_label="Choose topics", button_url=slot("preferences_url"), after_button="")
    if kind == "goodbye":
        return dict(
            subject=f"You have left {name}",
            preheader="You will get no more issues.",
            kicker="Unsubscribed",
            heading="You are unsubscribed",
            paragraphs=[f"{slot('email')} will get no more issues of {name}. This is the last mail about it.",
                        "Changed your mind? You can subscribe again on our site at any time."],
            button_label="", button_url="", after_button="")
    raise ValueError(f"unknown transactional mail kind {kind!r}")


_compiled: dict[tuple, CompiledEmail] = {}


def compiled_kind(settings: Settings, kind: str) -> CompiledEmail:
    """Compiled once per process and settings (site name, URL and sender)."""
    key = (kind, settings.site.name, settings.site.base_url, settings.site.postal_address)
    if key not in _compiled:
        _compiled[key] = _compile_kind(settings, kind)
    return _compiled[key]


def _compile_kind(settings: Settings, kind: str) -> CompiledEmail:
    site = site_view(settings)

    def context(slot: SlotMarker) -> dict:
        texts = _texts(kind, site.name, slot)
        reason = (f"You get this mail because {slot('email')} was entered at {site.base_url}."
                  if kind in CONFIRM_KINDS else f"You get this mail about your {site.name} subscription.")
        return {**texts, "site": site, "footer_reason": reason, "footer_links": []}

    subject = _texts(kind, site.name, SlotMarker())["subject"]
    return compile_email("transactional", subject, context, render)


def template_for(settings: Settings, kind: str) -> MessageTemplate:
    return build_template(settings, compiled_kind(settings, kind), list_headers=False)


def build_message(settings: Settings, secret: str, row: TransactionalMail, name: str, values: dict,
                  now: datetime) -> OutgoingMessage:
    reference = f"t{row.id}"
    personal = [
        ("To", recipient_address(name, row.to_email)),  # the name is data: never parsed as an address
        ("Date", format_datetime(now)),
        ("Message-ID", message_id(secret, reference, domain_of(settings.mail.from_address))),
        (DELIVERY_HEADER, reference),
    ]
    return assemble(settings, template_for(settings, row.kind), name, row.to_email, personal, values, reference,
                    signer_for(settings), envelope_from=envelope_sender(settings, secret, reference))
