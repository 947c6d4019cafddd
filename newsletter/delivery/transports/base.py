"""The one small interface every transport implements.

A transport knows nothing of issues or subscribers: it takes ready messages
(envelope + bytes) and answers, per message, sent / retry / failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    envelope_from: str
    recipient: str
    data: bytes  # a complete RFC 5322 message with CRLF line ends
    reference: str  # stable per delivery: file names, idempotency keys, webhook matching


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


class Transport(Protocol):
    name: str

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One result per message, in order. Must not raise for per-message problems."""
        ...

    def close(self) -> None:
        ...
