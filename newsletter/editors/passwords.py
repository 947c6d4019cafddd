"""Password hashing with Argon2id (argon2-cffi, the library the Argon2 authors maintain).

argon2-cffi's defaults follow RFC 9106's second recommended profile; a stored hash made with
older parameters is upgraded on the next successful login (`needs_rehash`). Checking an
unknown account still runs one verification, so the answer time does not reveal which
addresses are editors.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # Argon2 takes any length; a bound keeps a megabyte "password" from costing anything

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password of anyone: equalises timing")


class WeakPassword(ValueError):
    """The password is refused; the message says why."""


def check_strength(password: str, email: str = "") -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password: at least {MIN_LENGTH} characters, please")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password: at most {MAX_LENGTH} characters")
    if email and password.strip().lower() == email.strip().lower():
        raise WeakPassword("password: must not be your email address")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when `password` matches; an empty or broken stored hash never matches."""
    if not stored or len(password) > MAX_LENGTH:
        _burn()
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _burn() -> None:
    """One verification's worth of work, for accounts that do not exist or have no password."""
    try:
        _hasher.verify(_DUMMY, "wrong")
    except VerificationError:
        pass


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
