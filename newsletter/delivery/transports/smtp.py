"""SMTP over one reused connection (smtplib), with per-recipient reply mapping.

4xx replies, timeouts and dropped connections mean "retry later"; 5xx means
"failed"; a 5.1.x (unknown user) also flags a hard bounce for suppression.
A dropped connection is reopened once per message before giving up on it.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Sequence

from newsletter.config import SmtpSettings
from newsletter.delivery.transports.base import OutgoingMessage, Outcome, SendResult


def classify(code: int, text: bytes | str) -> SendResult:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    error = f"{code} {message}".strip()
    if 400 <= code < 500:
        return SendResult(Outcome.retry, error=error)
    # RFC 3463: enhanced status 5.1.x is a bad destination address (unknown user, bad domain).
    return SendResult(Outcome.failed, error=error, hard_bounce=message.lstrip().startswith("5.1."))


class SmtpTransport:
    name = "smtp"

    def __init__(self, settings: SmtpSettings, local_hostname: str | None = None) -> None:
        self.settings = settings
        self.local_hostname = local_hostname
        self.connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=context, local_hostname=self.local_hostname)
        else:
            connection = smtplib.SMTP(s.host, s.port, timeout=s.timeout, local_hostname=self.local_hostname)
        connection.ehlo()
        if s.security == "starttls":
            connection.starttls(context=context)
            connection.ehlo()
        if s.username:
            connection.login(s.username, s.password.get_secret_value())
        return connection

    def _ensure(self) -> smtplib.SMTP:
        if self.connection is None:
            self.connection = self._connect()
        return self.connection

    def _drop(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            finally:
                self.connection = None

    def _send_one(self, message: OutgoingMessage) -> SendResult:
        connection = self._ensure()
        try:
            refused = connection.sendmail(message.envelope_from, [message.recipient], message.data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients[message.recipient]
            return classify(code, text)
        except smtplib.SMTPSenderRefused as exc:
            return classify(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPDataError as exc:
            return classify(exc.smtp_code, exc.smtp_error)
        if refused:
            code, text = refused[message.recipient]
            return classify(code, text)
        return SendResult(Outcome.sent)

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in messages:
            result = None
            for attempt in (1, 2):
                try:
                    result = self._send_one(message)
                    break
                except (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, OSError) as exc:
                    # The connection is gone (idle timeout, server restart): reconnect once.
                    self._drop()
                    if attempt == 2:
                        result = SendResult(Outcome.retry, error=f"connection: {exc}")
                except smtplib.SMTPResponseException as exc:
                    self._drop()
                    result = classify(exc.smtp_code, exc.smtp_error)
                    break
                except smtplib.SMTPException as exc:
                    self._drop()
                    result = SendResult(Outcome.retry, error=f"smtp: {exc}")
                    break
            results.append(result)
        return results

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.connection = None
