"""Provider webhooks: one module per provider, each a small object (base.WebhookProvider) that
verifies a request's authenticity and turns its payload into NormalizedEvents
(newsletter/feedback/events.py). newsletter/web/webhooks.py serves them at
POST /webhooks/{provider}; newsletter/feedback/rules.py applies every event (the same rules as
the bounce mailbox); webhooks/nonces.py keeps single-use tokens single-use.
"""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.feedback.webhooks.base import WebhookProvider
from newsletter.feedback.webhooks.mailgun import MailgunWebhook
from newsletter.feedback.webhooks.postmark import PostmarkWebhook
from newsletter.feedback.webhooks.resend import ResendWebhook
from newsletter.feedback.webhooks.sendgrid import SendgridWebhook
from newsletter.feedback.webhooks.ses import SesWebhook


def providers(settings: Settings, **overrides: WebhookProvider) -> dict[str, WebhookProvider]:
    """Every provider by its path name, built from `[webhooks.*]`. `overrides` replace one by
    name, e.g. `ses=SesWebhook(settings.webhooks.ses, fetch_cert=...)` in tests."""
    cfg = settings.webhooks
    registry: dict[str, WebhookProvider] = {
        "postmark": PostmarkWebhook(cfg.postmark),
        "sendgrid": SendgridWebhook(cfg.sendgrid),
        "mailgun": MailgunWebhook(cfg.mailgun),
        "resend": ResendWebhook(cfg.resend),
        "ses": SesWebhook(cfg.ses),
    }
    unknown = set(overrides) - set(registry)
    if unknown:
        raise ValueError(f"no webhook provider named {', '.join(sorted(unknown))}")
    return {**registry, **overrides}
