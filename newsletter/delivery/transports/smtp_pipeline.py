"""SMTP pipelining across messages (RFC 2920): one write and one wait per message, not two.

Within one message, MAIL, RCPT and DATA already go out in one write (smtp.py `transaction`), but
the message content must wait for DATA's 354 and its own end-of-data reply: two waits for the
server per message, each a sleep and a wake-up of the sending thread (with smtp-sink on the same
machine, that kernel work was about a third of a worker's CPU per message). RFC 2920 3.1 lets the
message content lead the next command group, so here the content of message N, its ".", and
MAIL/RCPT/DATA of message N+1 go out in one write; the replies to read then are N's end-of-data
reply followed by N+1's three.

Replies come back in the order of the commands, so each one is matched to its message by
position, and every message keeps its own outcome:

- a 4xx/5xx to N's end of data is N's alone (retry / failed); N+1's MAIL already went out after
  the ".", which ended N's transaction either way, so no RSET is needed;
- a 4xx/5xx to N+1's MAIL, RCPT or DATA is N+1's alone (its content is never sent; should DATA get
  354 anyway, it is ended empty) and the session is RSET before the next message's commands;
- a 421 (the server is closing) or a dropped or timed-out session ends the run. At that moment
  at most two messages are in flight, and what happens to them is what `_Connection.send` does
  to a message whose session dropped: the one the server was answering (N after its "." was
  written: the server may or may not have taken it; or N+1 when its own replies failed) has had
  its try on this session, and gets one more on a new session; the other (N+1 while N's reply was
  awaited: only its commands went out, never its content) has not, and gets `send`'s two. A
  message whose 250 was read is never sent again, and none is left without a result.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from typing import Protocol

from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.delivery.transports.smtp_wire import (DROPPED, classify, end_of_data_reply, envelope, payload_sized,
                                                      send_pieces)
from newsletter.mail.message import OutgoingMessage

_SENT = SendResult(Outcome.sent)
_WANTED = ((250,), (250, 251), (354,))  # MAIL, RCPT, DATA


class Session(Protocol):
    """What the pipeline needs of smtp.py's pooled connection (not imported: smtp.py imports this)."""

    smtp: smtplib.SMTP | None
    sent: int  # messages handed to the session since it was opened

    def send(self, message: OutgoingMessage, attempts: int = 2) -> SendResult: ...

    def drop(self) -> None: ...


_MAXLINE = 8193  # smtplib's own limit on a reply line, plus one to see it exceeded


def _broken(smtp: smtplib.SMTP, line: bytes) -> None:
    """A read that did not end a line: the server closed the session (smtplib's getreply closes
    and raises the same), or sent a line longer than smtplib allows."""
    smtp.close()
    if len(line) >= _MAXLINE:
        raise smtplib.SMTPResponseException(500, "Line too long.")
    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def _rest_of_reply(smtp: smtplib.SMTP, first: bytes) -> tuple[int, bytes]:
    """A reply whose first line was read already and is not a plain one-line reply: the rest of
    its lines, joined as smtplib's getreply joins them."""
    lines, line = [], first
    while True:
        lines.append(line[4:].strip(b" \t\r\n"))
        try:
            code = int(line[:3])
        except ValueError:
            return -1, b"\n".join(lines)
        if line[3:4] != b"-":
            return code, b"\n".join(lines)
        assert smtp.file is not None
        line = smtp.file.readline(_MAXLINE)
        if not line.endswith(b"\n"):
            _broken(smtp, line)


class _Closing(smtplib.SMTPServerDisconnected):
    """A 421 reply: the server is closing the session, and nothing more will come on it."""


class Pipeline:
    """One run of messages pipelined over one open session that offers PIPELINING, until `take`
    has no more, the session reaches its per-connection cap, or the session ends."""

    def __init__(self, connection: Session, messages: Sequence[OutgoingMessage],
                 results: list[SendResult | None], take: Callable[[], int | None], cap: int,
                 data_done: Callable[[], float]) -> None:
        assert connection.smtp is not None
        self.connection, self.smtp = connection, connection.smtp
        self.messages, self.results, self.take = messages, results, take
        self.cap = cap  # messages per session (`max_messages_per_connection`)
        self.data_done = data_done  # how long the next end-of-data reply may be waited for (smtp.py)
        self.ended: int | None = None  # its content and "." were written; its end-of-data reply is due
        self.open: int | None = None  # its MAIL/RCPT/DATA were written; their replies are due

    def run(self, first: int) -> None:
        try:
            self._chain(first)
        except (smtplib.SMTPServerDisconnected, *DROPPED) as exc:
            self._recover(exc)
        except Exception as exc:  # never lose a result to an unexpected error
            self.connection.drop()
            for index in (self.ended, self.open):
                if index is not None:
                    self.results[index] = SendResult(Outcome.retry, error=f"smtp: {exc!r}")

    def _chain(self, first: int | None) -> None:
        """Write, read, write, ...: see the module docstring."""
        following = self._following(first)
        if following is None:
            return
        self.open = following[0]
        send_pieces(self.smtp, [following[1]])
        while self.open is not None:
            if self.ended is not None:
                code, text = end_of_data_reply(self.smtp, self.data_done(), self._reply)
                self.results[self.ended] = _SENT if code == 250 else classify(code, text)
                self.ended = None
            replies = [self._reply() for _ in _WANTED]
            refused = next((reply for reply, ok in zip(replies, _WANTED) if reply[0] not in ok), None)
            total: int | None = 0
            if refused is not None:
                self._refused(refused, replies[-1][0])
                following = self._following()
                pieces: list = []
            else:
                following = self._following()
                self.ended, self.open = self.open, None
                pieces, total = payload_sized(self.messages[self.ended])
            if following is not None:
                self.open = following[0]
                pieces.append(following[1])
                total = None if total is None else total + len(following[1])
            if pieces:
                send_pieces(self.smtp, pieces, total)
        if self.ended is not None:  # the last message's end-of-data reply
            code, text = end_of_data_reply(self.smtp, self.data_done(), self._reply)
            self.results[self.ended] = _SENT if code == 250 else classify(code, text)
            self.ended = None

    def _reply(self) -> tuple[int, bytes]:
        """The next reply, read as smtplib's getreply reads it (a session that ends mid-reply is
        closed and raises SMTPServerDisconnected) with a short path for the usual one-line reply:
        four replies a message, and smtplib's general loop was ~6% of a worker's GIL time (py-spy).
        A 421 raises _Closing."""
        smtp = self.smtp
        if smtp.file is None:
            return self._checked(*smtp.getreply())  # opens the reader (not after EHLO: never here)
        line = smtp.file.readline(_MAXLINE)
        if not line.endswith(b"\n"):  # the end of the stream, maybe in the middle of a line
            _broken(smtp, line)
        if len(line) >= 6 and line[3] == 32 and line[:3].isdigit():  # "250 …\r\n"
            return self._checked(int(line[:3]), line[4:].strip(b" \t\r\n"))
        return self._checked(*_rest_of_reply(smtp, line))

    @staticmethod
    def _checked(code: int, text: bytes) -> tuple[int, bytes]:
        """The reply as it is, or _Closing for a 421 (RFC 5321 4.2.2: the session ends)."""
        if code == 421:
            raise _Closing(f"421: the server closed the session ({text.decode('utf-8', 'replace')})")
        return code, text

    def _refused(self, refused: tuple[int, bytes], data_code: int) -> None:
        """The open message's MAIL, RCPT or DATA was refused: that is its result (its content is
        never sent), and the session is reset for the next one."""
        assert self.open is not None
        self.results[self.open] = classify(*refused)
        self.open = None
        if data_code == 354:  # DATA accepted despite the refusal: end it empty
            send_pieces(self.smtp, [b".\r\n"])
            self._reply()
        code, text = self.smtp.docmd("RSET")
        if code == 421:
            raise _Closing(f"421: the server closed the session ({text.decode('utf-8', 'replace')})")

    def _following(self, index: int | None = None) -> tuple[int, bytes] | None:
        """The next message to go out on this session and its MAIL/RCPT/DATA (`index`, else one
        from `take`); None when there is none, or the session has reached its cap. A message this
        server cannot take (a UTF-8 address without SMTPUTF8) gets its result and is passed over."""
        while True:
            if index is None:
                if self.connection.sent >= self.cap:
                    return None
                index = self.take()
                if index is None:
                    return None
            try:
                commands = envelope(self.smtp, self.messages[index])
            except smtplib.SMTPNotSupportedError as exc:  # nothing was sent: the session goes on
                self.results[index] = SendResult(Outcome.failed, error=f"smtp: {exc}")
                index = None
                continue
            self.connection.sent += 1
            return index, commands

    def _recover(self, exc: BaseException) -> None:
        """The session ended mid-run: each message in flight gets what `send` gives a message whose
        session dropped (see the module docstring for which has had its try)."""
        self.connection.drop()
        ended, open_ = self.ended, self.open
        self.ended = self.open = None
        if ended is not None:
            self.results[ended] = self.connection.send(self.messages[ended], attempts=1)
        if open_ is not None:
            self.results[open_] = self.connection.send(self.messages[open_], attempts=2 if ended is not None else 1)
