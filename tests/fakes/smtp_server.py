"""A real SMTP server (aiosmtpd) for tests: it records every message's bytes and session.

Faults by the recipient's local part:

- "unknown…": 550 5.1.1 (a hard bounce); "later…": 451 4.3.0 (try again later);
- "closing…": 421 4.3.2 to RCPT, then the server closes the session (RFC 5321 4.2.2: a 421 may
  come at any point, and the client must treat it as "retry" and open a new session);
- "droprcpt…": the server drops the connection on RCPT, without a reply;
- "dropdata…": the server drops the connection after reading DATA, without a reply and without
  accepting the message (a crash in the middle of a transaction);
- at the end of the message's data: "rejectdata…" 554 5.6.0 (the content refused), "deferdata…"
  451 4.3.1 (try again later), "closedata…" 421 and the session closes (the message not taken),
  "acceptclose…" the message is taken (250) and then the session closes: what the client had
  already pipelined after it (the next message's MAIL/RCPT/DATA) is lost with the session;
- by the sender's local part (MAIL FROM): "refusedsender…" 550 5.7.1, "latersender…" 451 4.7.1.

`fault_times` limits how often each address meets its fault (None: always), so a test can have a
flaky server that a retry gets through. `close_after`: a session that has carried that many
messages answers the next MAIL with 421 and closes (a server's per-session limit). `delay` makes
every DATA take that long (a slow peer, for crash and shutdown tests). The handler also counts RSET
and QUIT per session, the most sessions in a transaction at once, and the faults it injected.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


@dataclass
class Received:
    session: int  # the session's number (RecordingHandler._number), unique per test server
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class RecordingHandler:
    messages: list[Received] = field(default_factory=list)
    delay: float = 0.0
    rsets: Counter = field(default_factory=Counter)  # session -> RSET commands
    quits: Counter = field(default_factory=Counter)
    active: set = field(default_factory=set)  # sessions between MAIL and the end of DATA
    max_active: int = 0
    fault_times: int | None = None  # per address; None: every time
    close_after: int | None = None  # messages per session before a 421 to MAIL
    faults: Counter = field(default_factory=Counter)  # (kind, address) -> times injected
    per_session: Counter = field(default_factory=Counter)  # session number -> messages accepted
    sessions: int = 0
    pipelining: bool = False  # offer PIPELINING (RFC 2920) in the EHLO reply
    pipelined: int = 0  # RCPT commands that arrived with the DATA after them already in the buffer
    chained: int = 0  # messages whose data arrived with the next MAIL already behind it (RFC 2920 3.1)
    ehlo_names: list[str] = field(default_factory=list)  # what each EHLO said, in order

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.ehlo_names.append(hostname)
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    def _number(self, session) -> int:
        """A number per session that is never reused (id() of a closed session can be)."""
        if not hasattr(session, "test_number"):
            self.sessions += 1
            session.test_number = self.sessions
        return session.test_number

    def _fault(self, kind: str, address: str) -> bool:
        """True when this address should meet its fault `kind` now (and counts it)."""
        if not address.split("@")[0].startswith(kind):
            return False
        if self.fault_times is not None and self.faults[kind, address] >= self.fault_times:
            return False
        self.faults[kind, address] += 1
        return True

    async def _drop(self, server, session, reply: str | None = None):
        """Close the connection (after `reply`, if any); the session's task ends here."""
        self.active.discard(self._number(session))
        if reply is not None:
            await server.push(reply)
            server.transport.close()  # flushes the reply, then closes
        else:
            server.transport.abort()
        await asyncio.sleep(5)  # cancelled by connection_lost
        raise ConnectionResetError("dropped by the test server")

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.close_after is not None and self.per_session[self._number(session)] >= self.close_after:
            self.faults["close_after", self._number(session)] += 1
            await self._drop(server, session, "421 4.7.0 Too many messages in this session, closing")
        local = address.split("@")[0]
        if local.startswith("refusedsender"):
            return "550 5.7.1 <%s>: Sender address rejected: Access denied" % address
        if local.startswith("latersender"):
            return "451 4.7.1 <%s>: Sender address rejected: try again later" % address
        self.active.add(self._number(session))
        self.max_active = max(self.max_active, len(self.active))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self.rsets[self._number(session)] += 1
        self.active.discard(self._number(session))
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        self.quits[self._number(session)] += 1
        return "221 Bye"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if b"DATA\r\n" in bytes(getattr(server._reader, "_buffer", b"")):
            self.pipelined += 1
        local = address.split("@")[0]
        if local.startswith("unknown"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local.startswith("later"):
            return "451 4.3.0 Try again later"
        if self._fault("closing", address):
            await self._drop(server, session, "421 4.3.2 Service shutting down, closing transmission channel")
        if self._fault("droprcpt", address):
            await self._drop(server, session)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        if bytes(getattr(server._reader, "_buffer", b"")).startswith(b"MAIL FROM:"):
            self.chained += 1
        if any(self._fault("dropdata", address) for address in envelope.rcpt_tos[:1]):
            await self._drop(server, session)
        local = envelope.rcpt_tos[0].split("@")[0] if envelope.rcpt_tos else ""
        if local.startswith(("rejectdata", "deferdata")):
            self.active.discard(self._number(session))
        if local.startswith("rejectdata"):
            return "554 5.6.0 Message content rejected"
        if local.startswith("deferdata"):
            return "451 4.3.1 Insufficient system storage, try again later"
        if self._fault("closedata", envelope.rcpt_tos[0] if envelope.rcpt_tos else ""):
            await self._drop(server, session, "421 4.3.2 Shutting down, message not accepted")
        self.per_session[self._number(session)] += 1
        self.active.discard(self._number(session))
        # The session's own number, never id(session): a closed session's object is freed whenever
        # the garbage collector gets to it, and the next session may get the same id() (a test that
        # told sessions apart by it failed now and then on a loaded machine).
        self.messages.append(Received(self._number(session), envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content))
        if self._fault("acceptclose", envelope.rcpt_tos[0] if envelope.rcpt_tos else ""):
            await self._drop(server, session, "250 2.0.0 Ok: queued, and this session ends")
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(delay: float = 0.0, fault_times: int | None = None, close_after: int | None = None,
                 pipelining: bool = False, smtputf8: bool = False) -> tuple[Controller, RecordingHandler]:
    """`smtputf8`: offer SMTPUTF8 (RFC 6531) and take UTF-8 addresses in MAIL and RCPT."""
    handler = RecordingHandler(delay=delay, fault_times=fault_times, close_after=close_after,
                               pipelining=pipelining)
    # ready_timeout: aiosmtpd's default (5 s) for the server thread to come up is short on a loaded machine.
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False,
                            enable_SMTPUTF8=smtputf8, ready_timeout=60)
    controller.start()
    return controller, handler
