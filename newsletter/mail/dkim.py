"""DKIM signing (RFC 6376, RFC 8463 for Ed25519) with dkimpy, configured by `[mail.dkim]`.

The private key is read once per process (`signer_for` caches it), never per message. `h=` lists
the headers mailbox providers require for one-click unsubscribe (RFC 8058 §4: List-Unsubscribe and
List-Unsubscribe-Post must be signed) plus the identity headers; dkimpy's defaults leave out
List-Unsubscribe-Post, so the list is always passed explicitly. Headers that a message lacks
(Reply-To when none is configured) are left out of h=.

Keys: RSA as PEM (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY", e.g. `openssl genrsa 2048`);
Ed25519 as PKCS#8 PEM (`openssl genpkey -algorithm ed25519`) or dkimpy's base64 32-byte seed.
The DNS record to publish is in docs/operations.md.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from newsletter.config import DkimSettings, Settings
from newsletter.errors import ConfigError
from newsletter.mail.headers import domain_of

SIGNED_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
                  "List-Id", "Reply-To", "MIME-Version", "Content-Type")
REQUIRED_HEADERS = SIGNED_HEADERS[:7]

# PKCS#8 wrapping of an Ed25519 private key (RFC 8410): this prefix, then the 32-byte seed.
_ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class DkimSigner:
    selector: str
    domain: str
    algorithm: str  # rsa-sha256 | ed25519-sha256
    key: bytes  # in the form dkimpy takes: PEM for RSA, base64 seed for Ed25519

    def header(self, message: bytes) -> bytes:
        """The `DKIM-Signature: …` header (folded, ending in CRLF) for a complete message."""
        head = message.split(b"\r\n\r\n", 1)[0]
        present = {line.split(b":", 1)[0].strip().lower() for line in head.split(b"\r\n")
                   if line and line[:1] not in (b" ", b"\t")}
        include = [name.encode() for name in SIGNED_HEADERS if name.lower().encode() in present]
        import dkim  # imported on first use: workers without DKIM never load it (or dnspython)

        return dkim.sign(
            message, self.selector.encode(), self.domain.encode(), self.key,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=self.algorithm.encode(),
            include_headers=include, linesep=b"\r\n",
        )


def load_key(path: Path, algorithm: str) -> bytes:
    """Read a key file into dkimpy's form, refusing what it could not sign with."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config error: mail.dkim.private_key_file {path}: cannot read ({exc.strerror})")
    data = data.replace(b"\r\n", b"\n").strip()
    pem = _PEM.search(data)
    if algorithm == "rsa-sha256":
        if pem is None or pem.group(1) not in (b"RSA PRIVATE KEY", b"PRIVATE KEY"):
            raise ConfigError(f"config error: mail.dkim.private_key_file {path}: not a PEM RSA private key")
        key = pem.group(0) + b"\n"
        from dkim.crypto import UnparsableKeyError, parse_pem_private_key

        try:
            parse_pem_private_key(key)
        except UnparsableKeyError as exc:
            raise ConfigError(f"config error: mail.dkim.private_key_file {path}: {exc}")
        return key
    if pem is not None:  # Ed25519 in PKCS#8 PEM
        der = base64.b64decode(b"".join(pem.group(2).split()))
        if len(der) != 48 or not der.startswith(_ED25519_PKCS8_PREFIX):
            raise ConfigError(f"config error: mail.dkim.private_key_file {path}: not an Ed25519 private key")
        seed = der[len(_ED25519_PKCS8_PREFIX):]
    else:  # dkimpy's own format: the base64 seed
        try:
            seed = base64.b64decode(data, validate=True)
        except ValueError:
            seed = b""
        if len(seed) != 32:
            raise ConfigError(f"config error: mail.dkim.private_key_file {path}: "
                              "not an Ed25519 key (PKCS#8 PEM or a base64 32-byte seed)")
    try:
        import nacl.signing  # noqa: F401  (dkimpy signs Ed25519 through PyNaCl)
    except ImportError:
        raise ConfigError("config error: mail.dkim.algorithm = ed25519-sha256 needs the pynacl package")
    return base64.b64encode(seed)


def make_signer(config: DkimSettings, from_address: str) -> DkimSigner:
    return DkimSigner(config.selector, config.domain or domain_of(from_address), config.algorithm,
                      load_key(config.private_key_file, config.algorithm))


_cache: dict[tuple, DkimSigner] = {}
_cache_lock = threading.Lock()


def signer_for(settings: Settings) -> DkimSigner | None:
    """The signer for these settings, its key read once per process; None when DKIM is off."""
    config = settings.mail.dkim
    if not config.enabled:
        return None
    key = (config.selector, config.domain, str(config.private_key_file), config.algorithm,
           settings.mail.from_address)
    with _cache_lock:
        signer = _cache.get(key)
        if signer is None:
            signer = _cache[key] = make_signer(config, settings.mail.from_address)
        return signer
