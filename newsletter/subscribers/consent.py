"""What a reader agrees to, in one place, and where each consent change came from.

The sentence on the signup form is CONSENT_TEXT; CONSENT_VERSION names it and is stored on
every signup and confirmation event, so a record shows which wording the person saw. Change
the version whenever the wording changes (the date of the change is a good version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

CONSENT_VERSION = "2026-11-25"
CONSENT_TEXT = ("We send you a mail to confirm first. We use your address only for {site}; "
                "every issue has a one-click unsubscribe link.")

MAX_IP = 45  # the longest textual IPv6 address (with an embedded IPv4 part)
MAX_USER_AGENT = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Source(StrEnum):
    """Where a consent change came from."""

    form = "form"        # the signup form
    api = "api"          # POST /api/v1/public/subscriptions (the publication's own site or app)
    import_ = "import"   # `newsletter subscribers import` (CSV)
    demo = "demo"        # `newsletter demo`
    link = "link"        # confirm / unsubscribe / preferences / vote links, RFC 8058 one-click
    webhook = "webhook"  # reported by a mail provider or the bounce mailbox (provider in detail)
    editor = "editor"    # an editor in the console or an API token (who: in the detail and the audit log)


SOURCES = frozenset(source.value for source in Source)
# An import from another platform's export names it: "import:mailchimp" (newsletter/subscribers/platforms.py).
IMPORT_PREFIX = "import:"
MAX_SOURCE = 32


def known_source(source: str) -> bool:
    """One of SOURCES, or "import:<platform>" so a consent record says which export vouched for it."""
    if source in SOURCES:
        return True
    platform = source.removeprefix(IMPORT_PREFIX)
    return source.startswith(IMPORT_PREFIX) and platform.isidentifier() and len(source) <= MAX_SOURCE


def consent_text(site_name: str) -> str:
    return CONSENT_TEXT.format(site=site_name)


def clean_user_agent(value: str | None) -> str:
    """Control characters stripped, cut to the column size."""
    return _CONTROL.sub("", value or "").strip()[:MAX_USER_AGENT]


def clean_ip(value: str | None) -> str:
    return _CONTROL.sub("", value or "").strip()[:MAX_IP]


@dataclass(frozen=True)
class Origin:
    """Who was on the other end of a consent change (web requests); empty for the CLI."""

    ip: str | None = None
    user_agent: str | None = None
    consent_version: str | None = None

    def with_version(self, version: str | None = CONSENT_VERSION) -> "Origin":
        return Origin(self.ip, self.user_agent, version)
