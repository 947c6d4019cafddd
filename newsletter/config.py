"""Settings: config.toml, then NEWSLETTER_<SECTION>__<KEY> environment overrides.

The file is chosen by `--config`, else NEWSLETTER_CONFIG, else ./config.toml,
else the shipped config.toml (the embedded defaults). Relative paths in the
file are resolved against the file's folder so that the same config works
from any working directory; those of the embedded defaults against the working
directory, since an installed package's own folder is no place for data.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator,
                      model_validator)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from newsletter import shipped
from newsletter.errors import ConfigError, UserError
from newsletter.files import MiB, read_text_limited
from newsletter.templating import use_operator_templates
from newsletter.text import reject_control_chars

ENV_PREFIX = "NEWSLETTER_"
EMBEDDED_CONFIG = shipped("config.toml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteSettings(Section):
    name: str = "Weekly Verdicts"
    base_url: str = "http://127.0.0.1:8000"
    postal_address: str = ""
    timezone: str = "UTC"
    language: str = "en"
    templates_dir: Path = Path("")  # an operator's templates, each overriding the shipped one of its name

    @field_validator("name", "postal_address")
    @classmethod
    def _no_control(cls, value: str) -> str:
        return reject_control_chars(value, "value")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        reject_control_chars(value, "base_url")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def operator_templates(self) -> Path | None:
        """`templates_dir` when set (load_settings makes it absolute), for templating.use_operator_templates."""
        return None if str(self.templates_dir) in ("", ".") else self.templates_dir


class DatabaseSettings(Section):
    url: str = "sqlite:///var/newsletter.db"


class FileMailSettings(Section):
    dir: Path = Path("var/outbox")


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    security: Literal["none", "starttls", "tls"] = "none"
    timeout: float = Field(30.0, gt=0)
    pool_size: int = Field(4, ge=1, le=64)  # connections one worker sends a batch over, in threads
    max_messages_per_connection: int = Field(100, ge=1)  # then QUIT and reconnect


class DkimSettings(Section):
    enabled: bool = False
    selector: str = ""
    domain: str = ""  # empty: the domain of mail.from_address
    private_key_file: Path = Path("")
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"

    @field_validator("selector", "domain")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        reject_control_chars(value, "value")
        if value and not all(part and part.replace("-", "").replace("_", "").isalnum() and part.isascii()
                             for part in value.split(".")):
            raise ValueError(f"{value!r} is not a DNS name")
        return value.lower()

    @model_validator(mode="after")
    def _complete(self) -> "DkimSettings":
        if self.enabled and (not self.selector or not str(self.private_key_file) or
                             str(self.private_key_file) == "."):
            raise ValueError("enabled = true needs selector and private_key_file")
        return self


class HttpProviderSettings(Section):
    """Common keys of the HTTP provider transports (newsletter/delivery/transports/http.py).
    API keys are SecretStr fields that are read from the environment only."""

    base_url: str = ""  # the provider's API; tests point it at a local server
    timeout: float = Field(30.0, gt=0)  # seconds to wait for one HTTP answer

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        reject_control_chars(value, "base_url")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class PostmarkSettings(HttpProviderSettings):
    token: SecretStr = SecretStr("")  # server token: NEWSLETTER_MAIL__POSTMARK__TOKEN
    message_stream: str = Field("broadcast", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    base_url: str = "https://api.postmarkapp.com"


class SendgridSettings(HttpProviderSettings):
    api_key: SecretStr = SecretStr("")  # NEWSLETTER_MAIL__SENDGRID__API_KEY
    base_url: str = "https://api.sendgrid.com"


class MailgunSettings(HttpProviderSettings):
    api_key: SecretStr = SecretStr("")  # NEWSLETTER_MAIL__MAILGUN__API_KEY
    domain: str = Field("", pattern=r"^[A-Za-z0-9.-]*$")  # the sending domain, part of the URL
    base_url: str = "https://api.mailgun.net"  # EU region: https://api.eu.mailgun.net


class ResendSettings(HttpProviderSettings):
    api_key: SecretStr = SecretStr("")  # NEWSLETTER_MAIL__RESEND__API_KEY
    base_url: str = "https://api.resend.com"


class SesSettings(HttpProviderSettings):
    access_key_id: SecretStr = SecretStr("")  # NEWSLETTER_MAIL__SES__ACCESS_KEY_ID
    secret_access_key: SecretStr = SecretStr("")  # NEWSLETTER_MAIL__SES__SECRET_ACCESS_KEY
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z0-9]+)+-[0-9]+$")
    configuration_set: str = Field("", pattern=r"^[A-Za-z0-9_-]*$")
    base_url: str = ""  # empty: https://email.{region}.amazonaws.com


# Credentials of the provider transports: never read from a config file.
ENV_ONLY_SECRETS = {
    "postmark": ("token",),
    "sendgrid": ("api_key",),
    "mailgun": ("api_key",),
    "resend": ("api_key",),
    "ses": ("access_key_id", "secret_access_key"),
}


class MailSettings(Section):
    transport: Literal["file", "smtp", "postmark", "sendgrid", "mailgun", "resend", "ses"] = "file"
    from_address: str = "Weekly Verdicts <verdicts@weeklyverdicts.example>"
    reply_to: str = ""
    # A mailbox that receives unsubscribe requests by mail: List-Unsubscribe then also offers
    # <mailto:ADDRESS?subject=unsubscribe%20TOKEN> after the one-click https link (docs/email-quality.md).
    unsubscribe_mailbox: str = ""
    # The bounce mailbox: the envelope sender (Return-Path) when set; with `verp`, a signed
    # address per message on its domain, bounces+<reference>.<digest>@domain (newsletter/mail/verp.py).
    bounce_address: str = ""
    verp: bool = False
    file: FileMailSettings = FileMailSettings()
    smtp: SmtpSettings = SmtpSettings()
    postmark: PostmarkSettings = PostmarkSettings()
    sendgrid: SendgridSettings = SendgridSettings()
    mailgun: MailgunSettings = MailgunSettings()
    resend: ResendSettings = ResendSettings()
    ses: SesSettings = SesSettings()
    dkim: DkimSettings = DkimSettings()

    @field_validator("from_address", "reply_to", "bounce_address")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        return reject_control_chars(value, "address")

    @field_validator("unsubscribe_mailbox")
    @classmethod
    def _bare_address(cls, value: str) -> str:
        """It is written into a mailto: URL: one bare ASCII address, nothing to escape."""
        import re

        if value and not re.fullmatch(r"[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+", value):
            raise ValueError("unsubscribe_mailbox: give one bare ASCII address, like unsubscribe@example.org")
        return value
    @model_validator(mode="after")
    def _verp_needs_a_bounce_address(self) -> "MailSettings":
        if self.verp and "@" not in self.bounce_address:
            raise ValueError("verp = true needs bounce_address (e.g. \"bounces@bounce.example\"): "
                             "the VERP addresses are made on its domain")
        return self


class IssueSettings(Section):
    max_comparisons: int = Field(6, ge=1, le=50)


class DeliverySettings(Section):
    # 500: a 1M-row send ran 15% faster than with 100 (fewer claims and commits); a crash can
    # repeat at most the batch each worker had in flight (docs/operations.md). listmonk's default is 1,000.
    batch_size: int = Field(500, ge=1, le=10000)
    lease_seconds: int = Field(300, ge=10)
    max_attempts: int = Field(5, ge=1, le=50)
    retry_base_seconds: float = Field(60.0, ge=0)
    retry_max_seconds: float = Field(6 * 3600.0, ge=0)
    rate_per_second: int = Field(0, ge=0)  # per transport, all workers together; 0 = unlimited
    rate_per_hour: int = Field(0, ge=0)
    # A worker beats this often; its `sending` rows are taken over after 3 missed beats.
    heartbeat_seconds: float = Field(2.0, gt=0, le=60)


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleSettings(Section):
    draft_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    draft_time: str = "09:00"
    send_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "thu"
    send_time: str = "08:00"
    timezone: str = ""  # empty: the site's time zone
    auto_send: bool = False
    grace_minutes: float = Field(60.0, ge=0)
    tick_seconds: float = Field(30.0, gt=0)
    confirm_over: int = Field(1000, ge=0)  # `issue send` asks above this many recipients
    notify: list[str] = []  # editors' addresses for finished/failed notices

    @field_validator("draft_time", "send_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("use HH:MM, 24-hour")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}")
        return value

    @field_validator("notify")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            reject_control_chars(address, "notify")
            if "@" not in address:
                raise ValueError(f"{address!r} is not an email address")
        return value


class TrackingSettings(Section):
    """Off by default: readers are not tracked unless the publication turns it on."""

    opens: bool = False  # a 1x1 image per recipient
    clicks: bool = False  # comparison links go through a signed redirect that only allows the issue's links


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
    logins_per_account: int = Field(5, ge=1)  # login attempts per account per login_window_minutes
    logins_per_ip: int = Field(20, ge=1)  # login attempts per client IP per login_window_minutes
    login_window_minutes: float = Field(15.0, gt=0)


class ApiSettings(Section):
    """The REST API (/api/v1)."""

    cors_origins: list[str] = []  # sites allowed to call POST /api/v1/public/subscriptions from a browser


class SecuritySettings(Section):
    secret_key_file: Path = Path("var/secret.key")


class Settings(BaseSettings):
    """All settings; `source` records the file they came from, for messages."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
    )

    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    mail: MailSettings = MailSettings()
    issue: IssueSettings = IssueSettings()
    delivery: DeliverySettings = DeliverySettings()
    web: WebSettings = WebSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    tracking: TrackingSettings = TrackingSettings()
    security: SecuritySettings = SecuritySettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    admin: AdminSettings = AdminSettings()
    api: ApiSettings = ApiSettings()
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The config file these settings were read from."""
        return self._source

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which arrives as init kwargs.
        return (env_settings, init_settings)


def default_config_path() -> Path:
    env = os.environ.get("NEWSLETTER_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / "config.toml"
    if local.is_file():
        return local
    return EMBEDDED_CONFIG


def _format_error(path: Path, error: ValidationError) -> str:
    lines = [f"config error in {path}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        env_name = ENV_PREFIX + "__".join(str(part) for part in item["loc"]).upper()
        reason = item["msg"]
        if item["type"] == "extra_forbidden":
            reason = "unknown key (check the spelling; see config.toml for the known keys)"
        lines.append(f"  {key}: {reason} (set in the file or by {env_name})")
    return "\n".join(lines)


def _resolve_paths(settings: Settings, base: Path) -> None:
    """Make relative paths absolute against the config file's folder."""
    mail_dir = settings.mail.file.dir
    if not mail_dir.is_absolute():
        settings.mail.file.dir = base / mail_dir
    dkim_key = settings.mail.dkim.private_key_file
    if str(dkim_key) not in ("", ".") and not dkim_key.is_absolute():
        settings.mail.dkim.private_key_file = base / dkim_key
    key_file = settings.security.secret_key_file
    if not key_file.is_absolute():
        settings.security.secret_key_file = base / key_file
    url = settings.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        settings.database.url = prefix + str(base / url[len(prefix):])


def _reject_file_secrets(path: Path, data: dict, section: str, secrets: dict[str, tuple[str, ...]]) -> None:
    """API keys and webhook secrets come from the environment only, never from a config file."""
    table = data.get(section) if isinstance(data.get(section), dict) else {}
    for provider, keys in secrets.items():
        entries = table.get(provider) if isinstance(table.get(provider), dict) else {}
        for key in keys:
            if key in entries:
                env_name = f"{ENV_PREFIX}{section.upper()}__{provider.upper()}__{key.upper()}"
                raise ConfigError(f"config error in {path}:\n  {section}.{provider}.{key}: secrets are not read "
                                  f"from the config file; remove it there and set {env_name}")


def load_settings(path: Path | str | None = None) -> Settings:
    """Read the config file and the environment; raise ConfigError naming file and key.

    Also points the template loader at `[site] templates_dir` for this process (a worker
    process that gets its settings pickled applies it itself, see delivery/worker.py).
    """
    chosen = Path(path) if path else default_config_path()
    base = Path.cwd() if not path and chosen == EMBEDDED_CONFIG else chosen.resolve().parent
    path = chosen
    try:  # at most 1 MiB: `--config /dev/zero` is an error, not unbounded memory
        text = read_text_limited(path, MiB)
    except UserError as exc:
        raise ConfigError(f"config error: file {path} does not exist" if not path.exists()
                          else f"config error: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error in {path}: not valid TOML: {exc}")
    except RecursionError:
        raise ConfigError(f"config error in {path}: not valid TOML: nested too deeply") from None
    _reject_file_secrets(path, data, "mail", ENV_ONLY_SECRETS)
    _reject_file_secrets(path, data, "webhooks", WEBHOOK_ENV_ONLY_SECRETS)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc))
    _resolve_paths(settings, base)
    _check_templates_dir(path, settings.site, base)
    use_operator_templates(settings.site.operator_templates)
    settings._source = path
    return settings


def _check_templates_dir(path: Path, site: SiteSettings, base: Path) -> None:
    """Make the operator's template folder absolute; a folder that is not there is an error."""
    if site.operator_templates is None:
        return
    folder = site.templates_dir if site.templates_dir.is_absolute() else base / site.templates_dir
    if not folder.is_dir():
        raise ConfigError(f"config error in {path}:\n  site.templates_dir: {folder} is not a folder "
                          f"(set in the file or by {ENV_PREFIX}SITE__TEMPLATES_DIR)")
    site.templates_dir = folder
