"""The signing key for links (unsubscribe, preferences, confirmations).

It comes from NEWSLETTER_SECRET_KEY, else from `[security] secret_key_file`
(outside git: var/ is ignored). Only the demo creates the file when missing,
so a production install never signs with a key nobody chose to keep.
"""

from __future__ import annotations

import os
import re
import secrets

from newsletter.config import Settings
from newsletter.errors import ConfigError

ENV = "NEWSLETTER_SECRET_KEY"
MIN_LENGTH = 32


def _ring(raw: str, where: str) -> str:
    """Validate a key ring (first key signs, all verify) and return it comma-joined."""
    keys = [key for key in re.split(r"[,\s]+", raw) if key and not key.startswith("#")]
    if not keys:
        raise ConfigError(f"config error: {where} holds no key")
    for key in keys:
        if len(key) < MIN_LENGTH:
            raise ConfigError(f"config error: {where} is too short: use keys of at least {MIN_LENGTH} random characters")
    return ",".join(keys)


def load_secret_key(settings: Settings, create: bool = False) -> str:
    """The key ring: NEWSLETTER_SECRET_KEY (keys separated by commas) or the key file (one per line).
    To rotate, put the new key first and keep the old ones after it until their links expire."""
    value = os.environ.get(ENV)
    if value is not None:
        return _ring(value, ENV)
    path = settings.security.secret_key_file
    if path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return _ring("\n".join(line for line in lines if line and not line.startswith("#")),
                     f"security.secret_key_file {path}")
    if not create:
        raise ConfigError(
            f"config error: no signing key. Set {ENV}, or put a random key into "
            f"security.secret_key_file ({path}); `newsletter demo` creates one for local use."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key
