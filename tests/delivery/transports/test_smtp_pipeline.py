"""SMTP pipelining across messages (smtp_pipeline.py) against a real aiosmtpd server that answers
chosen commands with 4xx/5xx or ends the session at chosen points (tests/fakes/smtp_server.py).

With pipelining, the reply to a message's end of data arrives in the same read as the next
message's MAIL/RCPT/DATA replies, and a lost session can take a message already accepted and the
next one's commands with it. These tests pin each recipient's outcome and how many copies the
server took, one session with the messages in order (pool_size 1), so that a reply matched to the
wrong message, a message retried after its 250, or a pipelined message taken for sent fails
them. Each runs against a server that offers PIPELINING and against one that does not (the
one-message-at-a-time path must give the very same outcomes)."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import pytest

from newsletter.config import SmtpSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.mail.message import OutgoingMessage
from tests.fakes.smtp_server import start_server

SENT, RETRY, FAILED = Outcome.sent, Outcome.retry, Outcome.failed


@pytest.fixture(params=[False, True], ids=["sequential", "pipelined"])
def pipelining(request):
    return request.param


@pytest.fixture
def server(request, pipelining):
    """A server that offers PIPELINING or not; options (e.g. fault_times) by indirect param."""
    controller, handler = start_server(**getattr(request, "param", {}), pipelining=pipelining)
    yield controller, handler
    controller.stop()
    # Messages went out chained (the next MAIL behind the data) exactly when the server offered it.
    assert (handler.chained > 0) == pipelining, handler.chained


def message(to: str, n: int, sender: str = "bounces@sender.example") -> OutgoingMessage:
    data = (f"From: a@sender.example\r\nTo: {to}\r\nSubject: n{n}\r\nMessage-ID: <{n}@sender.example>\r\n\r\n"
            f"body {n}\r\n.leading dot\r\n").encode()
    return OutgoingMessage(sender, to, data, f"ref-{n}")


def send(controller, outgoing: list[OutgoingMessage], **settings) -> list:
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=60, pool_size=1,
                                           **settings))
    try:
        return transport.send(outgoing)
    finally:
        transport.close()


def received(handler) -> Counter:
    return Counter(m.rcpt_tos[0] for m in handler.messages)


def test_every_refusal_is_its_own_recipients(server):
    """End-of-data, MAIL and RCPT refusals between accepted messages, the last message refused at
    its end of data: each recipient gets the reply to its own commands, and the session goes on."""
    controller, handler = server
    plan = [("fine0", None, SENT), ("rejectdata1", None, FAILED), ("fine2", None, SENT),
            ("deferdata3", None, RETRY), ("unknown4", None, FAILED), ("fine5", None, SENT),
            ("later6", None, RETRY), ("fine7", "refusedsender7", FAILED), ("fine8", None, SENT),
            ("fine9", "latersender9", RETRY), ("deferdata10", None, RETRY), ("fine11", None, SENT),
            ("rejectdata12", None, FAILED)]
    outgoing = [message(f"{to}@example.com", n, f"{sender}@sender.example" if sender else "bounces@sender.example")
                for n, (to, sender, _) in enumerate(plan)]
    results = send(controller, outgoing)
    assert [r.outcome for r in results] == [outcome for _, _, outcome in plan]
    errors = {to: r.error for (to, _, _), r in zip(plan, results)}
    assert "554 5.6.0" in errors["rejectdata1"] and "554 5.6.0" in errors["rejectdata12"]
    assert "451 4.3.1" in errors["deferdata3"] and "451 4.3.1" in errors["deferdata10"]
    assert "550 5.1.1" in errors["unknown4"] and results[4].hard_bounce
    assert "451 4.3.0" in errors["later6"]
    assert "550 5.7.1" in errors["fine7"] and not results[7].hard_bounce
    assert "451 4.7.1" in errors["fine9"]
    assert not any(r.hard_bounce for n, r in enumerate(results) if n != 4)
    # The server took exactly the accepted ones, once each, byte for byte, all in the one session.
    assert received(handler) == {f"{to}@example.com": 1 for to, _, outcome in plan if outcome == SENT}
    assert {m.data for m in handler.messages} == {m.data for m, r in zip(outgoing, results) if r.outcome == SENT}
    assert len({m.session for m in handler.messages}) == 1


@pytest.mark.parametrize("server", [{"fault_times": 1}], indirect=True)
def test_a_session_lost_mid_pipeline_sends_each_message_once(server):
    """Sessions that end at every point of the pipeline, once per address: after a message was
    taken (its 250 read, the next one's commands lost with the session), with a 421 at the end of
    data, without a reply after the data, at RCPT, with a 421 at RCPT. Every message still gets
    through on a new session in the same call, and the server takes each exactly once."""
    controller, handler = server
    kinds = ["fine", "acceptclose", "fine", "closedata", "fine", "dropdata", "fine", "droprcpt", "fine",
             "closing", "acceptclose", "acceptclose", "fine"]
    outgoing = [message(f"{kind}{n}@example.com", n) for n, kind in enumerate(kinds)]
    results = send(controller, outgoing)
    assert [r.outcome for r in results] == [SENT] * len(kinds)
    assert received(handler) == {m.recipient: 1 for m in outgoing}
    assert {m.data for m in handler.messages} == {m.data for m in outgoing}
    assert sum(handler.faults.values()) == len(kinds) - kinds.count("fine")  # each fault met once
    assert handler.sessions == 1 + sum(handler.faults.values())  # every fault ended one session


def test_a_server_that_keeps_ending_sessions_loses_and_doubles_nothing(server):
    """Faults that hit every time: a message taken before its session ends is `sent` (never sent
    again); one refused with a 421 at its end of data, or dropped after its data, is tried on one
    new session and then left to retry; the message pipelined behind either is sent."""
    controller, handler = server
    kinds = ["acceptclose", "fine", "closedata", "fine", "dropdata", "fine", "acceptclose", "closedata"]
    outgoing = [message(f"{kind}{n}@example.com", n) for n, kind in enumerate(kinds)]
    results = send(controller, outgoing)
    expected = {"acceptclose": SENT, "fine": SENT, "closedata": RETRY, "dropdata": RETRY}
    assert [r.outcome for r in results] == [expected[kind] for kind in kinds]
    assert "421" in results[2].error and "421" in results[7].error
    assert received(handler) == {m.recipient: 1 for m, r in zip(outgoing, results) if r.outcome == SENT}
    # One try in the pipeline (or the first session), one on a new session: never a third.
    assert handler.faults["closedata", "closedata2@example.com"] == 2
    assert handler.faults["dropdata", "dropdata4@example.com"] == 2
    assert handler.faults["acceptclose", "acceptclose0@example.com"] == 1


def test_the_per_session_cap_holds_with_pipelining(server):
    controller, handler = server
    outgoing = [message(f"reader{n}@example.com", n) for n in range(11)]
    results = send(controller, outgoing, max_messages_per_connection=4)
    assert [r.outcome for r in results] == [SENT] * 11
    assert sorted(Counter(m.session for m in handler.messages).values()) == [3, 4, 4]
    assert received(handler) == {m.recipient: 1 for m in outgoing}


class StallingServer:
    """A minimal SMTP server on a raw socket (aiosmtpd cannot send half a reply): it takes every
    message, but to the end of the data of a message for a "stall…" recipient it sends only
    `partial` (the start of a reply line) and then nothing, keeping the session open."""

    def __init__(self, pipelining: bool, partial: bytes) -> None:
        self.pipelining, self.partial = pipelining, partial
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.released = threading.Event()
        self.received: Counter = Counter()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.released.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    def _session(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 stalling test server\r\n")
            recipient = b""
            while line := lines.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    connection.sendall(b"250-test\r\n250-PIPELINING\r\n250 8BITMIME\r\n" if self.pipelining
                                       else b"250-test\r\n250 8BITMIME\r\n")
                elif verb == b"QUIT":
                    connection.sendall(b"221 bye\r\n")
                    return
                elif verb == b"DATA":
                    connection.sendall(b"354 go on\r\n")
                    while lines.readline() not in (b".\r\n", b""):
                        pass
                    self.received[recipient] += 1
                    if recipient.startswith(b"stall"):
                        connection.sendall(self.partial)
                        self.released.wait(30)
                        return
                    connection.sendall(b"250 2.0.0 taken\r\n")
                else:
                    if verb == b"RCPT":
                        recipient = line.split(b"<", 1)[1].split(b"@", 1)[0]
                    connection.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.released.set()
        self.listener.close()


@pytest.mark.parametrize("partial", [b"", b"25"], ids=["silent", "half-a-reply"])
def test_a_server_that_stops_answering_is_a_dropped_session(pipelining, partial):
    """A silent server (the kernel keeps the socket's timeout, smtp_wire.kernel_timeouts) is a
    dropped session: the stalled message is tried on one new session and left to retry, never
    taken for refused; a reply cut at "25" is not code 25 (a permanent failure); the message
    pipelined behind it is sent once, on a new session. The stall is at the end of the data, so
    each wait is `data_done_timeout` (2 s), not the session's 1 s."""
    server = StallingServer(pipelining, partial)
    try:
        outgoing = [message(f"{kind}{n}@example.com", n) for n, kind in enumerate(["fine", "fine", "stall", "fine"])]
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=server.port, timeout=1, data_done_timeout=2,
                                               pool_size=1))
        started = time.monotonic()
        results = transport.send(outgoing)
        transport.close()
    finally:
        server.close()
    assert [r.outcome for r in results] == [SENT, SENT, RETRY, SENT], results
    assert "connection" in results[2].error
    assert server.received == {b"fine0": 1, b"fine1": 1, b"stall2": 2, b"fine3": 1}
    assert time.monotonic() - started < 20  # two waits of 2 s, not a hang
