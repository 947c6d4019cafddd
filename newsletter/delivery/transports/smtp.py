"""SMTP over a small pool of reused connections (smtplib), with per-recipient reply mapping.

A batch is spread over up to `[mail.smtp] pool_size` connections, one thread each (sending is
I/O bound; threads share nothing but a queue of messages). Each connection:

- is opened lazily (EHLO, STARTTLS or implicit TLS, AUTH) and reused across batches;
- after a refused sender, recipient or message, is reset with RSET and used for the next message
  (a 421 closes it: it is reopened for the next message);
- after `max_messages_per_connection` messages is closed with QUIT and reopened on next use, so a
  long send never outlives a server's per-session limits;
- when dropped (idle timeout, server restart) is reopened once per message before giving up.

4xx replies, timeouts and dropped connections mean "retry later"; 5xx means "failed"; a reply
that newsletter/delivery/bounce_class.py calls hard (5.1.x, unknown user, bad domain) also flags a hard
bounce for suppression, while a 5.7.x policy or spam block or a full mailbox does not.

The MAIL/RCPT/DATA exchange is written out here (`transaction`) instead of smtplib's `sendmail`
for two reasons: smtplib dot-stuffs with a multiline regex that costs ~1 ms per 75 KB issue, as
much as the whole exchange over loopback (our messages carry where their line-leading dots are,
so nothing is scanned); and smtplib does not pipeline (RFC 2920), which halves the round trips per message.
"""

from __future__ import annotations

import queue
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from newsletter.delivery.bounce_class import BounceClass
from newsletter.delivery.bounce_class import classify as classify_bounce
from newsletter.config import SmtpSettings
from newsletter.delivery.transports.base import TIME_BUDGET_SECONDS, Outcome, SendResult, not_tried
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.mime import line_dots as find_line_dots

_DROPPED = (ConnectionError, socket.timeout, OSError)


def classify(code: int, text: bytes | str) -> SendResult:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    error = f"{code} {message}".strip()
    if 400 <= code < 500:
        return SendResult(Outcome.retry, error=error)
    # The one classification of every bounce path: only "the address is gone" is hard.
    return SendResult(Outcome.failed, error=error, hard_bounce=classify_bounce(str(code), message) == BounceClass.hard)


_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_PLAIN_ADDRESS = re.compile(r"[!-~]+@[!-~]+")  # printable ASCII, no spaces; checked for <> below


def _stuffed(data: bytes, line_dots: Sequence[int] | None = None) -> list[bytes | memoryview]:
    """DATA payload with its terminator, dot-stuffed (RFC 5321 4.5.2), as pieces whose concatenation
    is the payload: slices of `data` with the added dots between them, so an 83 KB message is
    never copied (a fresh copy per message cost more than the whole exchange on a machine with
    slow memory). `line_dots`: where the dots are, from the builder (OutgoingMessage.line_dots;
    the data is then CRLF-only), so nothing is scanned; without them, line ends are checked and
    the dots found with bytes.find (several times faster than smtplib's multiline regex, but still
    ~300 us per 83 KB message)."""
    if line_dots is None:
        crlf = data.count(b"\r\n")
        if data.count(b"\n") != crlf or data.count(b"\r") != crlf:  # a bare LF or CR: make them CRLF
            data = _LINE_END.sub(b"\r\n", data)
        line_dots = find_line_dots(data)
    view = memoryview(data)
    pieces: list[bytes | memoryview] = []
    start = 0
    for at in line_dots:
        pieces += (view[start:at], b".")  # the line's own dot follows the added one
        start = at
    pieces.append(view[start:])
    if not data.endswith(b"\r\n"):
        pieces.append(b"\r\n")
    pieces.append(b".\r\n")
    return pieces


def _payload(message: OutgoingMessage) -> list[bytes | memoryview]:
    """The DATA payload of a message with its terminator: the builder's pieces (dot-stuffed by it
    already, line-aligned, CRLF-only) as they are, else `_stuffed` of its bytes."""
    if message.pieces is None:
        return _stuffed(message.data, message.line_dots)
    pieces: list[bytes | memoryview] = list(message.pieces if message.stuffed is None else message.stuffed)
    last = next((piece for piece in reversed(pieces) if len(piece)), b"\r\n")
    if not bytes(last[-2:]) == b"\r\n":
        pieces.append(b"\r\n")
    pieces.append(b".\r\n")
    return pieces


def _send_pieces(smtp: smtplib.SMTP, pieces: list[bytes | memoryview]) -> None:
    """Every piece, in order, in as few system calls as the kernel allows (sendmsg gathers them);
    a TLS socket cannot gather, so there the pieces are joined first."""
    sock = smtp.sock
    if sock is None:
        raise smtplib.SMTPServerDisconnected("please run connect() first")
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(b"".join(pieces))
        return
    pending = [piece for piece in pieces if len(piece)]
    while pending:
        batch = pending[:512]
        sent = sock.sendmsg(batch)
        done = 0
        while done < len(batch) and sent >= len(batch[done]):  # drop what went out
            sent -= len(batch[done])
            done += 1
        pending = pending[done:]
        if sent:  # a partly sent piece keeps its rest
            pending[0] = memoryview(pending[0])[sent:]


def _reset(smtp: smtplib.SMTP, code: int) -> None:
    if code == 421:  # the server is closing the session
        smtp.close()
        raise smtplib.SMTPServerDisconnected("421: the server closed the session")
    try:
        smtp.rset()  # RSET, and the session carries on with the next message
    except smtplib.SMTPServerDisconnected:
        pass


def _path(address: str) -> str:
    """`<address>` for MAIL/RCPT; smtplib's quoteaddr (a full parse, ~10 us) only when needed."""
    if _PLAIN_ADDRESS.fullmatch(address) and "<" not in address and ">" not in address:
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def transaction(smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes | OutgoingMessage,
                line_dots: Sequence[int] | None = None) -> None:
    """One MAIL/RCPT/DATA transaction for one recipient; raises smtplib's exceptions like
    `sendmail` does (after an RSET), so replies map the same way.

    When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write and the
    three replies are read in order: two round trips per message instead of four. A refusal is
    then known only after DATA was sent: a server must refuse that DATA too (503/554); should it
    answer 354 anyway, an empty message is ended with a lone "." before the RSET.

    An address that is not ASCII (a UTF-8 local part; domains arrive in IDNA A-labels) goes out
    with SMTPUTF8 (RFC 6531) when the server offers it; when it does not, SMTPNotSupportedError
    is raised before any command is sent."""
    smtp.ehlo_or_helo_if_needed()
    size = data.size if isinstance(data, OutgoingMessage) else len(data)
    options = f" SIZE={size}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    utf8 = not (sender.isascii() and recipient.isascii())
    if utf8:
        if not (smtp.does_esmtp and smtp.has_extn("smtputf8")):
            address = sender if recipient.isascii() else recipient
            raise smtplib.SMTPNotSupportedError(
                f"the address {address!r} needs SMTPUTF8, which the SMTP server does not offer")
        options += " SMTPUTF8"
        smtp.command_encoding = "utf-8"  # smtplib encodes commands with it (ASCII by default)
    try:
        _exchange(smtp, sender, recipient, data, line_dots, options)
    finally:
        smtp.command_encoding = "ascii"


def _exchange(smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes | OutgoingMessage,
              line_dots: Sequence[int] | None, options: str) -> None:
    """MAIL (with `options`), RCPT, DATA and the message; see `transaction`."""
    commands = (f"MAIL FROM:{_path(sender)}{options}", f"RCPT TO:{_path(recipient)}", "DATA")
    wanted = ((250,), (250, 251), (354,))
    if smtp.does_esmtp and smtp.has_extn("pipelining"):
        smtp.send("".join(f"{command}\r\n" for command in commands))
        replies = []
        for _ in commands:
            replies.append(smtp.getreply())
            if replies[-1][0] == 421:  # the server is closing the session: nothing more will come
                break
    else:
        replies = []
        for command, ok in zip(commands, wanted):
            replies.append(smtp.docmd(command))
            if replies[-1][0] not in ok:
                break
    for step, ((code, reply), ok) in enumerate(zip(replies, wanted)):
        if code in ok:
            continue
        if replies[-1][0] == 354:  # DATA accepted despite the refusal above: end it empty
            smtp.send(b".\r\n")
            smtp.getreply()
        _reset(smtp, code)
        if step == 0:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        if step == 1:
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        raise smtplib.SMTPDataError(code, reply)
    _send_pieces(smtp, _payload(data) if isinstance(data, OutgoingMessage) else _stuffed(data, line_dots))
    code, reply = smtp.getreply()
    if code != 250:
        _reset(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


class _Connection:
    """One pooled SMTP session; used by one thread at a time."""

    def __init__(self, transport: SmtpTransport) -> None:
        self.transport = transport
        self.smtp: smtplib.SMTP | None = None
        self.sent = 0  # messages handed to this session since it was opened

    def _open(self) -> smtplib.SMTP:
        s = self.transport.settings
        context = self.transport.tls_context
        local = self.transport.local_hostname
        if s.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context,
                                                  local_hostname=local)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout, local_hostname=local)
        try:
            smtp.ehlo()
            if s.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        self.sent = 0
        return smtp

    def ensure(self) -> smtplib.SMTP:
        if self.smtp is not None and self.sent >= self.transport.settings.max_messages_per_connection:
            self.quit()  # the per-connection cap: a clean QUIT, then a fresh session
        if self.smtp is None:
            self.smtp = self._open()
        return self.smtp

    def drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def quit(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            finally:
                self.smtp = None

    def _send_once(self, message: OutgoingMessage) -> SendResult:
        smtp = self.ensure()
        self.sent += 1
        try:
            transaction(smtp, message.envelope_from, message.recipient, message)
        except smtplib.SMTPRecipientsRefused as exc:  # the session was reset (RSET) already
            code, reply = exc.recipients[message.recipient]
            return classify(code, reply)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:  # likewise
            return classify(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPNotSupportedError as exc:  # nothing was sent: the session goes on
            return SendResult(Outcome.failed, error=f"smtp: {exc}")
        return SendResult(Outcome.sent)

    def send(self, message: OutgoingMessage) -> SendResult:
        for attempt in (1, 2):
            try:
                return self._send_once(message)
            except smtplib.SMTPAuthenticationError as exc:  # our configuration, not the message
                self.drop()
                return SendResult(Outcome.retry, error=f"smtp auth: {exc.smtp_code} {exc.smtp_error!r}")
            except smtplib.SMTPResponseException as exc:  # e.g. a 4xx/5xx greeting
                self.drop()
                return classify(exc.smtp_code, exc.smtp_error)
            except (smtplib.SMTPServerDisconnected, *_DROPPED) as exc:
                # The session is gone (idle timeout, server restart, 421): reconnect once.
                # (SMTPException is an OSError, so the response errors are caught above first.)
                self.drop()
                if attempt == 2:
                    return SendResult(Outcome.retry, error=f"connection: {exc}")
        raise AssertionError("unreachable")


class SmtpTransport:
    name = "smtp"
    needs_bytes = True
    time_budget = TIME_BUDGET_SECONDS

    def __init__(self, settings: SmtpSettings, local_hostname: str | None = None) -> None:
        self.settings = settings
        self.local_hostname = local_hostname
        self.tls_context = ssl.create_default_context() if settings.security != "none" else None
        self._idle: queue.LifoQueue[_Connection] = queue.LifoQueue()  # warm sessions are reused first
        self._all: list[_Connection] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def _checkout(self) -> _Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                connection = _Connection(self)
                self._all.append(connection)
                return connection

    def _run(self, work: queue.SimpleQueue, messages: Sequence[OutgoingMessage],
             results: list[SendResult | None], deadline: float) -> None:
        connection = self._checkout()
        try:
            while time.monotonic() < deadline:  # past it, what is left stays "not tried"
                try:
                    index = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[index] = connection.send(messages[index])
                except Exception as exc:  # never lose a result to an unexpected error
                    connection.drop()
                    results[index] = SendResult(Outcome.retry, error=f"smtp: {exc!r}")
        finally:
            self._idle.put(connection)

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One result per message, in order; the batch is spread over up to pool_size sessions.
        No message is started after `time_budget` seconds: a slow relay must not keep a batch
        past its lease, or another worker takes it over while it is still being sent."""
        results: list[SendResult | None] = [None] * len(messages)
        work: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(len(messages)):
            work.put(index)
        deadline = time.monotonic() + self.time_budget
        lanes = min(self.settings.pool_size, len(messages))
        if lanes <= 1:
            self._run(work, messages, results, deadline)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.settings.pool_size, thread_name_prefix="smtp")
            futures = [self._executor.submit(self._run, work, messages, results, deadline) for _ in range(lanes)]
            for future in futures:
                future.result()
        return [result or not_tried(self.name) for result in results]

    @property
    def open_connections(self) -> int:
        return sum(1 for connection in self._all if connection.smtp is not None)

    def close(self) -> None:
        """QUIT every pooled session."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for connection in self._all:
            connection.quit()
        self._all.clear()
        self._idle = queue.LifoQueue()
