"""SMTP over a small pool of reused connections (smtplib), with per-recipient reply mapping.

A batch is spread over up to `[mail.smtp] pool_size` connections, one thread each (sending is
I/O bound; threads share nothing but a queue of messages). Each connection:

- is opened lazily (EHLO, STARTTLS or implicit TLS, AUTH) and reused across batches;
- after a refused sender, recipient or message, is reset with RSET and used for the next message
  (a 421 closes it: it is reopened for the next message);
- after `max_messages_per_connection` messages is closed with QUIT and reopened on next use, so a
  long send never outlives a server's per-session limits;
- when dropped (idle timeout, server restart) is reopened once per message before giving up;
- when the server offers PIPELINING, carries its messages pipelined across messages
  (smtp_pipeline.py: each message's content goes out in the same write as the next one's
  MAIL/RCPT/DATA, one wait for the server per message instead of two), with the same outcomes.

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
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from newsletter.config import SmtpSettings
from newsletter.delivery.transports.base import TIME_BUDGET_SECONDS, Halt, Outcome, SendResult, halted, not_tried
from newsletter.delivery.transports.smtp_pipeline import Pipeline
from newsletter.delivery.transports.smtp_wire import DROPPED as _DROPPED
from newsletter.delivery.transports.smtp_wire import PlainSMTP
from newsletter.delivery.transports.smtp_wire import classify, end_of_data_reply, envelope_options, path as _path
from newsletter.delivery.transports.smtp_wire import payload as _payload
from newsletter.delivery.transports.smtp_wire import send_pieces as _send_pieces, stuffed as _stuffed
from newsletter.mail.message import OutgoingMessage

def _reset(smtp: smtplib.SMTP, code: int) -> None:
    if code == 421:  # the server is closing the session
        smtp.close()
        raise smtplib.SMTPServerDisconnected("421: the server closed the session")
    try:
        smtp.rset()  # RSET, and the session carries on with the next message
    except smtplib.SMTPServerDisconnected:
        pass


def transaction(smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes | OutgoingMessage,
                line_dots: Sequence[int] | None = None, data_done: float | None = None) -> None:
    """One MAIL/RCPT/DATA transaction for one recipient; raises smtplib's exceptions like
    `sendmail` does (after an RSET), so replies map the same way.

    When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write and the
    three replies are read in order: two round trips per message instead of four. A refusal is
    then known only after DATA was sent: a server must refuse that DATA too (503/554); should it
    answer 354 anyway, an empty message is ended with a lone "." before the RSET.

    An address that is not ASCII (a UTF-8 local part; domains arrive in IDNA A-labels) goes out
    with SMTPUTF8 (RFC 6531) when the server offers it; when it does not, SMTPNotSupportedError
    is raised before any command is sent. `data_done`: how long to wait for the reply to the end
    of the data (smtp_wire.end_of_data_reply; None: the session's timeout)."""
    smtp.ehlo_or_helo_if_needed()
    size = data.size if isinstance(data, OutgoingMessage) else len(data)
    options = envelope_options(smtp, sender, recipient, size)
    if "SMTPUTF8" in options:
        smtp.command_encoding = "utf-8"  # smtplib encodes commands with it (ASCII by default)
    try:
        _exchange(smtp, sender, recipient, data, line_dots, options, data_done)
    finally:
        smtp.command_encoding = "ascii"


def _exchange(smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes | OutgoingMessage,
              line_dots: Sequence[int] | None, options: str, data_done: float | None = None) -> None:
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
    code, reply = smtp.getreply() if data_done is None else end_of_data_reply(smtp, data_done, smtp.getreply)
    if code != 250:
        _reset(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


class _Connection:
    """One pooled SMTP session; used by one thread at a time."""

    def __init__(self, transport: SmtpTransport) -> None:
        self.transport = transport
        self.smtp: smtplib.SMTP | None = None
        self.sent = 0  # messages handed to this session since it was opened
        self.waits_until = float("inf")  # time.monotonic() past which no reply is waited for longer than `timeout`

    def data_done(self) -> float:
        """How long the next end-of-data reply may be waited for: `data_done_timeout`, cut at the
        send's end of waiting (`SmtpTransport.wait_limit`), so that a slow server cannot keep a
        batch past its lease (a message given up on sooner is retried, as after a timeout)."""
        return min(self.transport.settings.data_done_timeout, self.waits_until - time.monotonic())

    def _open(self) -> smtplib.SMTP:
        s = self.transport.settings
        context = self.transport.tls_context
        local = self.transport.local_hostname
        if s.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context,
                                                  local_hostname=local)
        else:
            # Plain sessions keep their timeout in the kernel: fewer system calls (smtp_wire.PlainSMTP).
            smtp_class = PlainSMTP if s.security == "none" else smtplib.SMTP
            smtp = smtp_class(s.host, s.port, timeout=s.timeout, local_hostname=local)
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
            transaction(smtp, message.envelope_from, message.recipient, message, data_done=self.data_done())
        except smtplib.SMTPRecipientsRefused as exc:  # the session was reset (RSET) already
            code, reply = exc.recipients[message.recipient]
            return classify(code, reply)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:  # likewise
            return classify(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPNotSupportedError as exc:  # nothing was sent: the session goes on
            return SendResult(Outcome.failed, error=f"smtp: {exc}")
        return SendResult(Outcome.sent)

    def send(self, message: OutgoingMessage, attempts: int = 2) -> SendResult:
        """One message on its own (MAIL/RCPT/DATA pipelined within it when offered). A dropped
        session is reopened and the message tried again, `attempts` in all: 1 for a message that
        already met the drop once inside a pipeline (smtp_pipeline.py)."""
        for attempt in range(1, attempts + 1):
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
                if attempt == attempts:
                    return SendResult(Outcome.retry, error=f"connection: {exc}")
        raise AssertionError("unreachable")

    def stream(self, take: Callable[[], int | None], messages: Sequence[OutgoingMessage],
               results: list[SendResult | None]) -> None:
        """Every message `take` hands out (an index; None: no more), each result into `results`.
        On an open session that offers PIPELINING the messages go out pipelined across messages
        (smtp_pipeline.py: one write and one wait each); else, and for the first message of each
        session (it opens the session, with `send`'s reconnect and error mapping), one by one."""
        cap = self.transport.settings.max_messages_per_connection
        while (index := take()) is not None:
            smtp = self.smtp
            if smtp is not None and self.sent < cap and smtp.does_esmtp and smtp.has_extn("pipelining"):
                Pipeline(self, messages, results, take, cap, self.data_done).run(index)
                continue
            try:
                results[index] = self.send(messages[index])
            except Exception as exc:  # never lose a result to an unexpected error
                self.drop()
                results[index] = SendResult(Outcome.retry, error=f"smtp: {exc!r}")


class SmtpTransport:
    name = "smtp"
    needs_bytes = True
    halts = True
    time_budget = TIME_BUDGET_SECONDS
    # How long after its start one send() may still wait for an end-of-data reply longer than
    # `timeout` (make_transport: half the lease, the record has the other half).
    wait_limit = float("inf")

    def __init__(self, settings: SmtpSettings, local_hostname: str | None = None) -> None:
        self.settings = settings
        # What EHLO says, looked up once: smtplib's own default (the FQDN, or where the machine has
        # none the address as a literal), which smtplib would otherwise work out for every session.
        self.local_hostname = local_hostname or settings.helo_name or smtplib.SMTP().local_hostname
        self.tls_context = ssl.create_default_context() if settings.security != "none" else None
        self._idle: queue.LifoQueue[_Connection] = queue.LifoQueue()  # warm sessions are reused first
        self._all: list[_Connection] = []
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._aborted = False  # `abort`: no message is started any more

    def _checkout(self) -> _Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                connection = _Connection(self)
                self._all.append(connection)
                return connection

    def _run(self, work: queue.SimpleQueue, messages: Sequence[OutgoingMessage],
             results: list[SendResult | None], deadline: float, waits_until: float, halt: Halt | None,
             stopped: threading.Event) -> None:
        def take() -> int | None:
            if self._aborted or time.monotonic() >= deadline:  # what is left stays "not tried"
                return None
            if halt is not None and (stopped.is_set() or halt()):  # what is left is "halted"
                stopped.set()
                return None
            try:
                return work.get_nowait()
            except queue.Empty:
                return None

        connection = self._checkout()
        connection.waits_until = waits_until
        try:
            connection.stream(take, messages, results)
        finally:
            self._idle.put(connection)

    def send(self, messages: Sequence[OutgoingMessage], halt: Halt | None = None) -> list[SendResult]:
        """One result per message, in order; the batch is spread over up to pool_size sessions.
        No message is started after `time_budget` seconds: a slow relay must not keep a batch
        past its lease, or another worker takes it over while it is still being sent. Nor once
        `halt` (asked before each message) answered True."""
        results: list[SendResult | None] = [None] * len(messages)
        work: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(len(messages)):
            work.put(index)
        started, stopped = time.monotonic(), threading.Event()
        deadline, waits_until = started + self.time_budget, started + self.wait_limit
        lanes = min(self.settings.pool_size, len(messages))
        if lanes <= 1:
            self._run(work, messages, results, deadline, waits_until, halt, stopped)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.settings.pool_size, thread_name_prefix="smtp")
            futures = [self._executor.submit(self._run, work, messages, results, deadline, waits_until, halt, stopped)
                       for _ in range(lanes)]
            for future in futures:
                future.result()
        left = halted(self.name) if stopped.is_set() else not_tried(self.name)
        return [result or left for result in results]

    def abort(self) -> None:
        """A stop that does not wait for the batch in hand (a worker's second signal): the sessions'
        threads start no more messages; those already on the wire finish. The worker then gives its
        rows back, and without this the threads went on sending the rest of the batch while other
        workers claimed and sent the same rows."""
        self._aborted = True

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
