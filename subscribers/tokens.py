"""Signed, purpose-bound tokens for links in mail.

The purpose is the itsdangerous salt: an unsubscribe token is no preferences
token and vice versa. Tokens carry the subscriber id and their signing time, so
they expire (`max_age`) without any stored state.
"""

from __future__ import annotations

from functools import lru_cache
from enum import StrEnum

from itsdangerous import BadData, URLSafeTimedSerializer

DAY = 24 * 3600


class Purpose(StrEnum):
    unsubscribe = "unsubscribe"
    preferences = "preferences"
    vote = "vote"
    track = "track"


# Unsubscribe links must keep working long after the mail arrived (RFC 8058
# readers click months later); preferences links are shorter-lived.
MAX_AGE = {Purpose.unsubscribe: 365 * DAY, Purpose.preferences: 90 * DAY, Purpose.vote: 60 * DAY, Purpose.track: 90 * DAY}


class InvalidToken(Exception):
    """Forged, altered, expired or made for another purpose."""


@lru_cache(maxsize=16)
def _serializer(secret: str, purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=f"weekly-verdicts:{purpose.value}")


def make_token(secret: str, purpose: Purpose, subscriber_id: int) -> str:
    return _serializer(secret, purpose).dumps(subscriber_id)


def read_token(secret: str, purpose: Purpose, token: str, max_age: int | None = None) -> int:
    try:
        value = _serializer(secret, purpose).loads(token, max_age=max_age or MAX_AGE[purpose])
    except BadData as exc:
        raise InvalidToken(str(exc)) from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken("token does not name a subscriber")
    return value
