"""A real SMTP server (aiosmtpd) for tests: it records every message's bytes and session.

Recipients whose local part starts with "unknown" get 550 5.1.1, "later" get 451 4.3.0.
`delay` makes every DATA take that long (a slow peer, for crash and shutdown tests); the handler
also counts RSET and QUIT per session and the most sessions that were in a transaction at once.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


@dataclass
class Received:
    session: int
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

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.active.add(id(session))
        self.max_active = max(self.max_active, len(self.active))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self.rsets[id(session)] += 1
        self.active.discard(id(session))
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        self.quits[id(session)] += 1
        return "221 Bye"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("unknown"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local.startswith("later"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        self.active.discard(id(session))
        self.messages.append(Received(id(session), envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content))
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(delay: float = 0.0) -> tuple[Controller, RecordingHandler]:
    handler = RecordingHandler(delay=delay)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    return controller, handler
