"""The [mail] section: transport choice, addresses, and the file, SMTP, HTTP provider and DKIM
subsections. Provider credentials come from the environment only (ENV_ONLY_SECRETS).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from newsletter.config.sections import Section
from newsletter.text import reject_control_chars


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)


def helo_name_checked(value: str) -> str:
    """`value` as EHLO may give it (lower-cased, one trailing dot dropped); "" stays "" (the
    default: this machine's name). ValueError says what is wrong."""
    if not value:
        return value
    if value.startswith("["):
        return _address_literal(value)
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{value!r} is not a domain name (letters, digits and hyphens, labels of at most 63, "
                         "IDNA A-labels for other scripts) nor an address literal like [192.0.2.1]")
    if len(labels) < 2 or labels[-1].isdigit():
        raise ValueError(f"{value!r} is not a fully qualified domain name: give the host's full name "
                         "(mail.example.org) or its address as a literal ([192.0.2.1], [IPv6:2001:db8::1])")
    return name.lower()


def _address_literal(value: str) -> str:
    """[IPv4] or [IPv6:…] (RFC 5321 4.1.3; the tag in any case), checked by ipaddress."""
    inner = value[1:-1] if value.endswith("]") else ""
    try:
        if inner[:5].lower() == "ipv6:":
            if "%" in inner or ipaddress.IPv6Address(inner[5:]).scope_id:  # a zone: no such literal
                raise ValueError
            return f"[IPv6:{inner[5:].lower()}]"
        return f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError:
        raise ValueError(f"{value!r} is not an address literal like [192.0.2.1] or [IPv6:2001:db8::1]") from None


class FileMailSettings(Section):
    dir: Path = Path("var/outbox")


class SmtpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    security: Literal["none", "starttls", "tls"] = "none"
    timeout: float = Field(30.0, gt=0)
    # The wait for the reply to a message's end of data: the server may be scanning it then, and a
    # message given up on is sent again (RFC 5321 4.5.3.2.6 suggests 10 minutes). It ends at half
    # the batch's lease whatever this says (transports/smtp.py `wait_limit`).
    data_done_timeout: float = Field(120.0, gt=0)
    pool_size: int = Field(4, ge=1, le=64)  # connections one worker sends a batch over, in threads
    max_messages_per_connection: int = Field(100, ge=1)  # then QUIT and reconnect
    helo_name: str = ""  # the name we give in EHLO; empty: this machine's fully qualified name

    @field_validator("helo_name")
    @classmethod
    def _helo(cls, value: str) -> str:
        """RFC 5321 4.1.1.1: a fully qualified domain name or an address literal; anything else a
        strict server refuses or scores as spam, so it is refused here, naming the value."""
        reject_control_chars(value, "helo_name")
        return helo_name_checked(value.strip())


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
