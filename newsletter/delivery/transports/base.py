"""The one small interface every transport implements.

A transport knows nothing of issues or subscribers: it takes ready messages
(envelope + bytes) and answers, per message, sent / retry / failed.

The messages themselves (OutgoingMessage and its `content`) are defined in
newsletter.mail.message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from newsletter.mail.message import OutgoingMessage


class Outcome(StrEnum):
    sent = "sent"
    retry = "retry"  # temporary: 4xx, timeouts, dropped connections
    failed = "failed"  # permanent: 5xx


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None
    hard_bounce: bool = False  # the address does not exist: suppress it
    retry_after: float | None = None  # seconds the provider asked us to wait (HTTP 429 Retry-After)
    not_started: bool = False  # never handed to the server: the send was halted (`halted`)


# How long one send() may go on starting messages. A batch is leased for `[delivery]
# lease_seconds` (default 300); past the lease another worker takes it over and sends it again,
# so a transport stops starting messages well before: what is left is retried later.
TIME_BUDGET_SECONDS = 120.0


def not_tried(transport: str) -> SendResult:
    """For a message a send() did not start because its time budget ran out."""
    return SendResult(Outcome.retry, error=f"{transport}: not tried: the call ran out of time")


def halted(transport: str) -> SendResult:
    """For a message a send() did not start because its `halt` said so (the issue was paused or
    cancelled meanwhile): the caller gives it back to the queue instead of counting an attempt."""
    return SendResult(Outcome.retry, error=f"{transport}: not started: the send was paused or cancelled",
                      not_started=True)


Halt = Callable[[], bool]  # asked between messages: True stops the call starting more


class Transport(Protocol):
    name: str
    # False: the transport reads only `content` (the JSON APIs), so a builder may leave `data`
    # empty; making 80 KB of MIME per message was most of a JSON send's cost. Absent means True.
    needs_bytes: bool
    # True: send() takes `halt` and asks it between messages (or requests), so a pause or a cancel
    # stops a batch of 500 within about a second instead of after the whole batch. Absent: False.
    halts: bool

    def send(self, messages: Sequence[OutgoingMessage], halt: Halt | None = None) -> list[SendResult]:
        """One result per message, in order. Must not raise for per-message problems. A message
        not started because `halt` answered True gets `halted(name)`."""
        ...

    def close(self) -> None:
        ...
