"""Transports, chosen by `[mail] transport`. Each module holds one transport."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.delivery.transports.base import TIME_BUDGET_SECONDS, Outcome, SendResult, Transport
from newsletter.mail.message import OutgoingMessage


# Transports that can carry an address whose local part is not ASCII (SMTPUTF8, RFC 6531): the
# file outbox, and SMTP when the server offers SMTPUTF8 (else that message fails with a clear
# error). The HTTP providers are left out: SES and SendGrid document 7-bit ASCII local parts only,
# and Postmark, Mailgun and Resend document no SMTPUTF8 support. The signup form refuses such an
# address at once for them (docs/addresses.md).
SMTPUTF8_TRANSPORTS = frozenset({"file", "smtp"})


def carries_smtputf8(settings: Settings) -> bool:
    """True when the configured transport can try a non-ASCII local part."""
    return settings.mail.transport in SMTPUTF8_TRANSPORTS


def make_transport(settings: Settings) -> Transport:
    """The configured transport, its time budget fitted to the lease (`time_budget`)."""
    transport = _transport_for(settings)
    timeout = getattr(getattr(settings.mail, settings.mail.transport, None), "timeout", None)
    if timeout is not None and hasattr(transport, "time_budget"):
        transport.time_budget = time_budget(settings.delivery.lease_seconds, timeout)
    if hasattr(transport, "wait_limit"):  # SMTP's longer wait for end-of-data replies ends with the send's half
        transport.wait_limit = settings.delivery.lease_seconds / 2
    return transport


def time_budget(lease_seconds: float, timeout: float) -> float:
    """How long one send() may go on starting messages: the batch's lease must also cover the wait
    of the last messages started (up to the transport's `timeout`) and the record (sender.py gives
    it half the lease), or another worker takes the batch over while it is being sent and sends it
    again. At most TIME_BUDGET_SECONDS, and at least a quarter of the lease (a lease shorter than
    twice the timeout cannot promise that; docs/operations.md)."""
    return max(min(TIME_BUDGET_SECONDS, lease_seconds / 2 - timeout), lease_seconds / 4)


def _transport_for(settings: Settings) -> Transport:
    kind = settings.mail.transport
    if kind == "file":
        from newsletter.delivery.transports.file import FileTransport

        return FileTransport(settings.mail.file.dir, return_path=bool(settings.mail.verp or settings.mail.bounce_address))
    if kind == "smtp":
        from newsletter.delivery.transports.smtp import SmtpTransport

        return SmtpTransport(settings.mail.smtp)
    # The HTTP providers: one module each, imported only when chosen.
    if kind == "postmark":
        from newsletter.delivery.transports.postmark import PostmarkTransport

        return PostmarkTransport(settings.mail.postmark)
    if kind == "sendgrid":
        from newsletter.delivery.transports.sendgrid import SendgridTransport

        return SendgridTransport(settings.mail.sendgrid)
    if kind == "mailgun":
        from newsletter.delivery.transports.mailgun import MailgunTransport

        return MailgunTransport(settings.mail.mailgun)
    if kind == "resend":
        from newsletter.delivery.transports.resend import ResendTransport

        return ResendTransport(settings.mail.resend)
    if kind == "ses":
        from newsletter.delivery.transports.ses import SesTransport

        return SesTransport(settings.mail.ses)
    raise ValueError(f"unknown transport {kind!r}")


__all__ = ["OutgoingMessage", "Outcome", "SendResult", "Transport", "carries_smtputf8", "make_transport"]
