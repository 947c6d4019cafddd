"""Transports, chosen by `[mail] transport`. Each module holds one transport."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.delivery.transports.base import OutgoingMessage, Outcome, SendResult, Transport


def make_transport(settings: Settings) -> Transport:
    kind = settings.mail.transport
    if kind == "file":
        from newsletter.delivery.transports.file import FileTransport

        return FileTransport(settings.mail.file.dir)
    if kind == "smtp":
        from newsletter.delivery.transports.smtp import SmtpTransport

        return SmtpTransport(settings.mail.smtp)
    raise ValueError(f"unknown transport {kind!r}")


__all__ = ["OutgoingMessage", "Outcome", "SendResult", "Transport", "make_transport"]
