"""The reader-facing sections: [web], [tracking], [webhooks] (with their env-only secrets),
[feedback] and [security].
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from newsletter.config.sections import Section
from newsletter.text import reject_control_chars


class TrackingSettings(Section):
    """Off by default: readers are not tracked unless the publication turns it on."""

    opens: bool = False  # a 1x1 image per recipient
    clicks: bool = False  # comparison links go through a signed redirect that only allows the links


class WebSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    confirm_ttl_hours: float = Field(48.0, gt=0)
    check_deliverability: bool = False  # DNS lookups of the address's domain at signup
    trust_forwarded_for: bool = False  # deprecated alias: true means trusted_proxy_hops = 1
    form_min_seconds: float = Field(2.0, ge=0)
    form_max_seconds: float = Field(7200.0, gt=0)
    signups_per_ip_per_hour: int = Field(10, ge=1)
    signups_per_network_per_hour: int = Field(30, ge=1)
    signups_per_address_per_hour: int = Field(3, ge=1)
    confirmations_per_address_per_day: int = Field(4, ge=1)
    confirmation_interval_minutes: float = Field(10.0, ge=0)
    # Browser and proxy defences (docs/web.md, "Defences against abuse").
    trusted_proxy_hops: int = Field(0, ge=0, le=10)  # reverse proxies in front that append to X-Forwarded-For
    allowed_hosts: list[str] = []  # Host headers accepted besides base_url's host
    embed_origins: list[str] = []  # sites allowed to frame /embed and post its form, e.g. "https://blog.example"
    address_changes_per_reader_per_hour: int = Field(3, ge=1)
    address_changes_per_ip_per_hour: int = Field(10, ge=1)
    # uvicorn's line per request: off by default, since it writes every reader's personal link
    # (unsubscribe, confirm, preferences tokens) with their IP to the log, and at 200 requests/s
    # it was a tenth of the web process's Python time (issue 18). The reverse proxy's log remains.
    access_log: bool = False

    @model_validator(mode="after")
    def _forwarded_alias(self) -> "WebSettings":
        """`trust_forwarded_for = true` (deprecated) means one trusted proxy unless hops are set."""
        if self.trust_forwarded_for and self.trusted_proxy_hops == 0:
            self.trusted_proxy_hops = 1
        return self

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            reject_control_chars(host, "allowed_hosts")
            if not host or "/" in host or " " in host:
                raise ValueError(f"{host!r} is not a host name (no scheme, no path)")
        return [host.lower() for host in value]

    @field_validator("embed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        for origin in value:
            reject_control_chars(origin, "embed_origins")
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") \
                    or parts.query or parts.fragment or " " in origin:
                raise ValueError(f"{origin!r} is not an origin like https://blog.example")
        return [origin.rstrip("/").lower() for origin in value]


class PostmarkWebhookSettings(Section):
    username: SecretStr = SecretStr("")  # basic auth in the webhook URL: NEWSLETTER_WEBHOOKS__POSTMARK__USERNAME
    password: SecretStr = SecretStr("")  # NEWSLETTER_WEBHOOKS__POSTMARK__PASSWORD


class SendgridWebhookSettings(Section):
    public_key: str = ""  # the Signed Event Webhook's verification key (base64 DER or PEM); not a secret
    max_age_seconds: int = Field(300, ge=10, le=86400)  # replay window of the signed timestamp


class MailgunWebhookSettings(Section):
    signing_key: SecretStr = SecretStr("")  # NEWSLETTER_WEBHOOKS__MAILGUN__SIGNING_KEY
    max_age_seconds: int = Field(300, ge=10, le=86400)


class ResendWebhookSettings(Section):
    secret: SecretStr = SecretStr("")  # whsec_...: NEWSLETTER_WEBHOOKS__RESEND__SECRET
    max_age_seconds: int = Field(300, ge=10, le=86400)


class SesWebhookSettings(Section):
    topic_arn: str = ""  # the SNS topic(s) allowed, comma-separated; empty: the endpoint is off


class WebhooksSettings(Section):
    """Provider event webhooks (docs/webhooks.md); a provider without its secret answers 503."""

    postmark: PostmarkWebhookSettings = PostmarkWebhookSettings()
    sendgrid: SendgridWebhookSettings = SendgridWebhookSettings()
    mailgun: MailgunWebhookSettings = MailgunWebhookSettings()
    resend: ResendWebhookSettings = ResendWebhookSettings()
    ses: SesWebhookSettings = SesWebhookSettings()


# Webhook secrets: never read from a config file either.
WEBHOOK_ENV_ONLY_SECRETS = {"postmark": ("username", "password"), "mailgun": ("signing_key",), "resend": ("secret",)}


class FeedbackSettings(Section):
    soft_bounce_limit: int = Field(3, ge=1, le=100)  # soft-bounced messages in a row that suspend an address


class AdminSettings(Section):
    """The editors' console (/admin): sessions, login throttling, set-password links."""

    session_hours: float = Field(12.0, gt=0)  # a session ends this long after login, whatever happens
    idle_minutes: float = Field(120.0, gt=0)  # ... or after this long without a request
    set_password_hours: float = Field(72.0, gt=0)  # life of the link `editors add` prints
    logins_per_account: int = Field(5, ge=1)  # failed login attempts per account per login_window_minutes
    logins_per_ip: int = Field(20, ge=1)  # failed login attempts per client IP per login_window_minutes
    login_window_minutes: float = Field(15.0, gt=0)


class ApiSettings(Section):
    """The REST API (/api/v1)."""

    cors_origins: list[str] = []  # sites allowed to call POST /api/v1/public/subscriptions from a browser


class SecuritySettings(Section):
    secret_key_file: Path = Path("var/secret.key")


class OutgoingWebhookSettings(Section):
    """Webhooks this site sends to owners' URLs (newsletter/delivery/webhooks_out.py, docs/api.md)."""

    # http:// to 127.0.0.1, ::1 or localhost only with this on (tests, a receiver on the same host);
    # every other URL must be https://.
    allow_loopback_http: bool = False
    timeout_seconds: float = Field(10.0, gt=0, le=60)
    max_attempts: int = Field(8, ge=1, le=50)  # then the delivery is marked failed
    retry_base_seconds: float = Field(30.0, ge=0)  # doubled each attempt (with jitter) ...
    retry_max_seconds: float = Field(6 * 3600.0, ge=0)  # ... up to this
