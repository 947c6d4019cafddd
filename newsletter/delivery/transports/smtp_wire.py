"""The SMTP client's wire pieces shared by the one-message exchange (smtp.py) and the pipeline
across messages (smtp_pipeline.py): reply classification, envelope paths, the DATA payload and its
gathered write. Kept apart so both modules use them without importing each other."""

from __future__ import annotations

import contextlib
import io
import re
import smtplib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence

from newsletter.delivery.bounce_class import BounceClass
from newsletter.delivery.bounce_class import classify as classify_bounce
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.mime import line_dots as find_line_dots

DROPPED = (ConnectionError, socket.timeout, OSError)


def classify(code: int, text: bytes | str) -> SendResult:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    error = f"{code} {message}".strip()
    if 400 <= code < 500:
        return SendResult(Outcome.retry, error=error)
    # The one classification of every bounce path: only "the address is gone" is hard.
    return SendResult(Outcome.failed, error=error, hard_bounce=classify_bounce(str(code), message) == BounceClass.hard)


_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")
_PLAIN_ADDRESS = re.compile(r"[!-~]+@[!-~]+")  # printable ASCII, no spaces; checked for <> below


def stuffed(data: bytes, line_dots: Sequence[int] | None = None) -> list[bytes | memoryview]:
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


def payload(message: OutgoingMessage) -> list[bytes | memoryview]:
    """The DATA payload of a message with its terminator: the builder's pieces (dot-stuffed by it
    already, line-aligned, CRLF-only) as they are, else `_stuffed` of its bytes."""
    return payload_sized(message)[0]


def payload_sized(message: OutgoingMessage) -> tuple[list[bytes | memoryview], int | None]:
    """`payload` and its length in bytes when known without summing the pieces again (the builder's
    pieces, not dot-stuffed: the message's size and the terminator), else None."""
    if message.pieces is None:
        return stuffed(message.data, message.line_dots), None
    pieces: list[bytes | memoryview] = list(message.pieces if message.stuffed is None else message.stuffed)
    extra = 3
    last = next((piece for piece in reversed(pieces) if len(piece)), b"\r\n")
    if not bytes(last[-2:]) == b"\r\n":
        pieces.append(b"\r\n")
        extra += 2
    pieces.append(b".\r\n")
    return pieces, (message.size + extra if message.stuffed is None else None)


def send_pieces(smtp: smtplib.SMTP, pieces: list[bytes | memoryview], total: int | None = None) -> None:
    """Every piece, in order, in as few system calls as the kernel allows (sendmsg gathers them);
    a TLS socket cannot gather, so there the pieces are joined first. `total`: their length in
    bytes, when the caller knows it (else summed here)."""
    sock = smtp.sock
    if sock is None:
        raise smtplib.SMTPServerDisconnected("please run connect() first")
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(b"".join(pieces))
        return
    if len(pieces) <= _GATHER:  # the usual case: one call takes it all (a blocking socket waits)
        sent = sock.sendmsg(pieces)
        if sent == (total if total is not None else sum(map(len, pieces))):
            return
        pieces = [b"".join(pieces)[sent:]]  # rare (a write cut short): the rest, in one piece
    pending = [piece for piece in pieces if len(piece)]
    while pending:
        batch = pending[:_GATHER]
        sent = sock.sendmsg(batch)
        done = 0
        while done < len(batch) and sent >= len(batch[done]):  # drop what went out
            sent -= len(batch[done])
            done += 1
        pending = pending[done:]
        if sent:  # a partly sent piece keeps its rest
            pending[0] = memoryview(pending[0])[sent:]


_GATHER = 512  # pieces per sendmsg, well under IOV_MAX (1024 on Linux)


def path(address: str) -> str:
    """`<address>` for MAIL/RCPT; smtplib's quoteaddr (a full parse, ~10 us) only when needed."""
    if _PLAIN_ADDRESS.fullmatch(address) and "<" not in address and ">" not in address:
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def envelope_options(smtp: smtplib.SMTP, sender: str, recipient: str, size: int) -> str:
    """MAIL's options for one message: SIZE when offered, SMTPUTF8 (RFC 6531) when an address is not
    ASCII (a UTF-8 local part; domains arrive in IDNA A-labels). Raises SMTPNotSupportedError,
    before any command is sent, when such an address meets a server that does not offer it."""
    options = f" SIZE={size}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    if sender.isascii() and recipient.isascii():
        return options
    if not (smtp.does_esmtp and smtp.has_extn("smtputf8")):
        address = sender if recipient.isascii() else recipient
        raise smtplib.SMTPNotSupportedError(
            f"the address {address!r} needs SMTPUTF8, which the SMTP server does not offer")
    return options + " SMTPUTF8"


def envelope(smtp: smtplib.SMTP, message: OutgoingMessage) -> bytes:
    """MAIL FROM, RCPT TO and DATA of one message as one write (RFC 2920 lets DATA end a group);
    raises SMTPNotSupportedError like `envelope_options`."""
    options = envelope_options(smtp, message.envelope_from, message.recipient, message.size)
    text = (f"MAIL FROM:{path(message.envelope_from)}{options}\r\n"
            f"RCPT TO:{path(message.recipient)}\r\nDATA\r\n")
    return text.encode("utf-8" if options.endswith("SMTPUTF8") else "ascii")



def kernel_timeouts(sock: socket.socket, seconds: float | None) -> None:
    """The socket's timeout kept by the kernel (SO_RCVTIMEO/SO_SNDTIMEO) instead of by CPython.

    A socket with a Python timeout is polled before every send and receive (CPython waits in
    poll(), then makes the call): two extra system calls per message on the pipelined path
    (strace: 2 poll per message beside 1 sendmsg and 1 recvfrom). A blocking socket with the
    kernel's timeouts makes the call and waits in it. A wait that runs out then fails the call with
    EAGAIN: `TimedReader` turns that into socket.timeout for reads, and a write raises
    BlockingIOError; both are OSErrors, a dropped session for the callers, as before."""
    if seconds is None or seconds <= 0:
        return
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


class TimedReader(io.RawIOBase):
    """Reads of a socket with kernel timeouts. socket.makefile's reader answers EAGAIN (the
    kernel's timeout ran out) with "no data yet", and a buffered readline then returns the part
    of a line it has: smtplib would read a reply cut at "25" as code 25, a permanent failure.
    Here it raises socket.timeout instead."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.patience = 0.0  # time.monotonic() until which a timed-out read waits again (`end_of_data_reply`)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while True:
            try:
                return self._sock.recv_into(buffer)
            except BlockingIOError as exc:
                if time.monotonic() < self.patience:
                    continue
                raise socket.timeout("timed out") from exc


def end_of_data_reply(smtp: smtplib.SMTP, seconds: float, read: Callable[[], tuple[int, bytes]]) -> tuple[int, bytes]:
    """`read()` of the reply to a message's end of data, waited for up to `seconds` instead of the
    session's `timeout`. The server may still be taking the message then (content filters run at
    that point; RFC 5321 4.5.3.2.6 suggests ten minutes), and a message given up on is sent again
    on a new session: its reader could get it twice. A plain session's reader waits again after
    each of the kernel's timed-out reads until then (so nothing it has read is lost); a TLS
    session's timeout is raised for this read."""
    raw = getattr(smtp.file, "raw", None)
    if isinstance(raw, TimedReader):
        raw.patience = time.monotonic() + seconds
        try:
            return read()
        finally:
            raw.patience = 0.0
    sock = smtp.sock
    before = sock.gettimeout() if sock is not None else None
    if before is None or before >= seconds:
        return read()
    sock.settimeout(seconds)
    try:
        return read()
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(before)


class PlainSMTP(smtplib.SMTP):
    """smtplib.SMTP over a plain socket whose timeout the kernel keeps (`kernel_timeouts`). Only
    plain sessions: STARTTLS and implicit TLS keep CPython's timeouts (an SSL socket has its own
    reads and errors)."""

    def _get_socket(self, host, port, timeout):  # type: ignore[no-untyped-def]
        sock = super()._get_socket(host, port, timeout)
        kernel_timeouts(sock, timeout)
        return sock

    def getreply(self):  # type: ignore[no-untyped-def]
        if self.file is None and self.sock is not None and self.sock.gettimeout() is None:
            self.file = io.BufferedReader(TimedReader(self.sock))
        return super().getreply()
