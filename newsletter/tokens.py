"""Signed, purpose-bound tokens for links in mail, and the key ring they are signed with.

The purpose is the itsdangerous salt: an unsubscribe token is no preferences
token and vice versa. Tokens carry the subscriber id and their signing time, so
they expire (`max_age`) without any stored state. They also carry the reader's
random `token_key` (subscriber.token_key): a link names one person, not an id,
so it can never act for a later reader who got the same id. Links made before
the key existed carry none and match only readers whose key is "".

Keys rotate: the secret may hold several keys (comma-separated in
NEWSLETTER_SECRET_KEY, one per line in the key file). The first signs, all
verify, so links already in inboxes keep working after a new key is put first.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from itsdangerous import BadData, Signer, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode

from newsletter.text import looks_like_bitcoin_address

DAY = 24 * 3600


class Purpose(StrEnum):
    unsubscribe = "unsubscribe"
    preferences = "preferences"
    vote = "vote"
    track = "track"


# Unsubscribe links must keep working long after the mail arrived (RFC 8058
# readers click months later); preferences links are shorter-lived.
MAX_AGE = {Purpose.unsubscribe: 365 * DAY, Purpose.preferences: 90 * DAY, Purpose.vote: 60 * DAY,
           Purpose.track: 90 * DAY}


class InvalidToken(Exception):
    """Forged, altered, expired or made for another purpose."""


@lru_cache(maxsize=8)
def keys_of(secret: str) -> tuple[str, ...]:
    """The key ring in a secret: first signs, all verify."""
    keys = tuple(key for key in re.split(r"[,\s]+", secret) if key)
    if not keys:
        raise ValueError("the secret holds no key")
    return keys


def _ring(secret: str) -> list[str]:
    # itsdangerous takes a list oldest first and signs with the last one.
    return list(reversed(keys_of(secret)))


class _DerivedKeyCache:
    """itsdangerous derives the signing key from secret and salt (two HMACs) for every signature;
    the result only depends on the key, so it is kept."""

    def derive_key(self, secret_key=None):
        cache = self.__dict__.setdefault("_derived", {})
        key = secret_key if secret_key is not None else self.secret_keys[-1]
        if key not in cache:
            cache[key] = super().derive_key(key)
        return cache[key]


class _TimestampSigner(_DerivedKeyCache, TimestampSigner):
    pass


class _Signer(_DerivedKeyCache, Signer):
    pass


@lru_cache(maxsize=32)
def timestamp_signer(secret: str, salt: str) -> TimestampSigner:
    """Made once per key ring and purpose: deriving the key per token would dominate sending."""
    return _TimestampSigner(_ring(secret), salt=salt, digest_method=hashlib.sha256)


@lru_cache(maxsize=32)
def plain_signer(secret: str, salt: str) -> Signer:
    return _Signer(_ring(secret), salt=salt, digest_method=hashlib.sha256)


class KeyedDigest:
    """HMAC-SHA256 under the ring's first key (Message-IDs, VERP addresses), its pads made once:
    a send makes two per message, and hmac.new() sets up an OpenSSL context per call."""

    __slots__ = ("_pads",)

    def __init__(self, secret: str) -> None:
        self._pads = _pads(keys_of(secret)[0].encode())

    def hex(self, message: str) -> str:
        return _hmac(self._pads, message.encode()).hex()


@lru_cache(maxsize=8)
def keyed_digester(secret: str) -> KeyedDigest:
    return KeyedDigest(secret)


def keyed_digest(secret: str, message: str) -> str:
    """An HMAC with the signing key (Message-IDs): made with the first key."""
    return keyed_digester(secret).hex(message)


def verify_digest(secret: str, message: str, digest: str, length: int) -> bool:
    """True when `digest` is the (shortened) HMAC of `message` under any key of the ring."""
    return any(hmac.compare_digest(hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()[:length],
                                   digest) for key in keys_of(secret))


def _salt(purpose: Purpose) -> str:
    return f"weekly-verdicts:{purpose.value}"


def _pads(key: bytes) -> tuple:
    """HMAC-SHA256 (RFC 2104) for `key`, its inner and outer hash states after the key block."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key)))


def _hmac(pads: tuple, message: bytes) -> bytes:
    """HMAC-SHA256 from precomputed pads: two hash copies, in C. hmac.digest() and hmac.new()
    set up an OpenSSL MAC context per call (several microseconds each under OpenSSL 3), and a send
    makes four per message."""
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.digest()


@lru_cache(maxsize=32)
def _signing_pads(secret: str, purpose: Purpose) -> tuple:
    """The pads of the purpose's derived signing key (itsdangerous' own derivation, first key)."""
    return _pads(timestamp_signer(secret, _salt(purpose)).derive_key())


@lru_cache(maxsize=4)
def _stamp(seconds: int) -> str:
    """itsdangerous' timestamp: the big-endian bytes of the unix time, URL-safe base64."""
    return base64_encode(seconds.to_bytes(8, "big").lstrip(b"\x00")).decode()


def stamp_now() -> int:
    """The signing time of tokens, in itsdangerous' whole seconds: taken once per batch or message
    and handed to TokenSigner, so a reader's tokens share one stamp."""
    return int(time.time())


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _urlsafe_b64(data: bytes) -> str:
    """URL-safe base64 without padding, one C call (base64.urlsafe_b64encode is three)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE, b"=").decode("ascii")


def token_value(subscriber_id: int, key: str = "") -> str:
    """What a token signs: the subscriber id, and their token_key when they have one."""
    return f"{subscriber_id}-{key}" if key else str(subscriber_id)


class TokenSigner:
    """Signs link tokens for one key ring, byte for byte what `timestamp_signer(secret,
    salt).sign(value)` makes (value.stamp.signature, HMAC-SHA256 under itsdangerous' derived key;
    tests/test_tokens.py holds it to that), without itsdangerous' per-call work: a message's
    three tokens were an eighth of a send's CPU. One reader's tokens share the "value.stamp"
    prefix, encoded once (`sign_all`)."""

    def __init__(self, secret: str) -> None:
        self._pads = {purpose: _signing_pads(secret, purpose) for purpose in Purpose}

    def _signature(self, purpose: Purpose, signed: bytes) -> str:
        return _urlsafe_b64(_hmac(self._pads[purpose], signed))

    def sign(self, purpose: Purpose, value: str, stamp: int, _prefix: str = "") -> str:
        """The token for `value` signed at `stamp` (unix seconds; see stamp_now).

        A signature is random-looking base64, and about one token in a few thousand holds a word
        SpamAssassin takes for a Bitcoin address (__BITCOIN_ID, a part of several spam rules):
        such a token is signed again one second earlier, which changes the whole signature
        and nothing a reader sees; it still verifies and expires a second sooner."""
        signed = _prefix or f"{value}.{_stamp(stamp)}"
        signature = self._signature(purpose, signed.encode())
        while _bitcoin_like(signature):
            stamp -= 1
            signed = f"{value}.{_stamp(stamp)}"
            signature = self._signature(purpose, signed.encode())
        return f"{signed}.{signature}"

    def sign_all(self, value: str, stamp: int, purposes: Iterable[Purpose]) -> list[str]:
        """One reader's tokens for several purposes, all signed at `stamp`: `sign` for each, with
        the signed text made and encoded once (a send signs three per message)."""
        prefix = f"{value}.{_stamp(stamp)}"
        signed = prefix.encode()
        tokens = []
        for purpose in purposes:
            signature = self._signature(purpose, signed)
            tokens.append(f"{prefix}.{signature}" if not _bitcoin_like(signature) else
                          self.sign(purpose, value, stamp - 1))
        return tokens


def _bitcoin_like(signature: str) -> bool:
    """newsletter.text.looks_like_bitcoin_address, asked only when the signature can match: every
    form of the rule begins at a word boundary with 1, 3 or b (a signature follows a ".")."""
    return (signature[:1] in ("1", "3", "b") or "-1" in signature or "-3" in signature
            or "-b" in signature) and looks_like_bitcoin_address(signature)


@lru_cache(maxsize=8)
def token_signer(secret: str) -> TokenSigner:
    """Made once per key ring: the pads of every purpose's derived key."""
    return TokenSigner(secret)


def make_token(secret: str, purpose: Purpose, subscriber_id: int, key: str = "") -> str:
    """A signed link token for the reader with this id and `key` (their token_key), signed now."""
    return token_signer(secret).sign(purpose, token_value(subscriber_id, key), stamp_now())


# The reader id in the links of an editor's test copy (`issue test`): signed like a reader's link,
# but naming nobody, so the routes answer that it is a test copy instead of "does not work".
TEST_READER = 0


@dataclass(frozen=True)
class LinkSubject:
    """Who a verified token names: a subscriber id and the key it was made with."""

    subscriber_id: int
    key: str

    @property
    def in_test_copy(self) -> bool:
        """A link of an editor's test copy (TEST_READER), not of a reader's mail."""
        return self.subscriber_id == TEST_READER

    def names(self, subscriber_id: int | None, token_key: str | None) -> bool:
        """True only for the very reader the link was made for."""
        return subscriber_id == self.subscriber_id and hmac.compare_digest(self.key, token_key or "")


def issue_copy_key(secret: str, issue_id: int) -> str:
    """The key a test copy's links carry: binds them to their issue, so a forwarded test copy of
    one draft opens nothing of another (its comparison links work before the send)."""
    return keyed_digest(secret, f"test-copy:{issue_id}")[:16]


def is_issue_copy(secret: str, subject: LinkSubject, issue_id: int) -> bool:
    """True for a link of a test copy of this very issue (any key of the ring made it)."""
    return subject.in_test_copy and verify_digest(secret, f"test-copy:{issue_id}", subject.key, 16)


_KEY = r"[0-9a-f]{16}"
_VALUE = re.compile(rf"([0-9]{{1,18}})(?:-({_KEY}))?")
_TOKEN = re.compile(rf"[0-9]{{1,18}}(?:-{_KEY})?\.[A-Za-z0-9_-]{{1,16}}\.[A-Za-z0-9_-]{{16,128}}")


def _canonical(token: str) -> bool:
    """Only the exact form make_token writes: base64 decoding ignores the spare low bits of the
    last character and a trailing "=", so without this check several spellings of one token
    would all verify (a changed token must never be accepted)."""
    if not _TOKEN.fullmatch(token):
        return False
    _value, stamp, signature = token.split(".")
    try:
        return all(base64_encode(base64_decode(part)).decode() == part for part in (stamp, signature))
    except BadData:
        return False


def read_token(secret: str, purpose: Purpose, token: str, max_age: int | None = None) -> LinkSubject:
    """Who a genuine, unexpired token of this purpose names; the caller still checks that this
    reader exists with that key (newsletter.subscribers.service.link_holder)."""
    if not _canonical(token):
        raise InvalidToken("malformed token")
    try:
        value = timestamp_signer(secret, _salt(purpose)).unsign(token, max_age=max_age or MAX_AGE[purpose])
    except BadData as exc:
        raise InvalidToken(str(exc)) from None
    match = _VALUE.fullmatch(value.decode())
    if match is None:
        raise InvalidToken("token does not name a subscriber")
    return LinkSubject(int(match.group(1)), match.group(2) or "")
