"""The signing key for links (unsubscribe, preferences, confirmations).

It comes from NEWSLETTER_SECRET_KEY, else from `[security] secret_key_file`
(outside git: var/ is ignored). Only the demo creates the file when missing,
so a production install never signs with a key nobody chose to keep.
"""

from __future__ import annotations

import os
import secrets

from newsletter.config import Settings
from newsletter.errors import ConfigError

ENV = "NEWSLETTER_SECRET_KEY"
MIN_LENGTH = 32


def load_secret_key(settings: Settings, create: bool = False) -> str:
    value = os.environ.get(ENV)
    if value is not None:
        if len(value) < MIN_LENGTH:
            raise ConfigError(f"config error: {ENV} is too short: use at least {MIN_LENGTH} random characters")
        return value
    path = settings.security.secret_key_file
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if len(key) < MIN_LENGTH:
            raise ConfigError(f"config error: security.secret_key_file {path} holds a key shorter than {MIN_LENGTH}")
        return key
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
