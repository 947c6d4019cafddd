"""DKIM: real keys (cryptography, PyNaCl), a real issue message, dkimpy's verifier with a DNS stub."""

import base64
import re
from datetime import UTC, datetime

import dkim
import pytest

from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope
from newsletter.errors import ConfigError
from newsletter.issues.drafting import draft_issue
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from newsletter.mail import dkim as wv_dkim
from tests.conftest import TEST_SECRET, write_config
from tests.db_templates import migrate_fresh, sample_content

DOMAIN = "weeklyverdicts.example"
SELECTOR = "wv2026"
REQUIRED = ["from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"]
def _write_pem(key, path) -> bytes:
    """Write the private key as PKCS#8 PEM (what `openssl genpkey` writes); return the public key as DER."""
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_key(folder):
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = folder / "dkim-rsa.pem"
    public = _write_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), key)
    return key, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def ed25519_pem_key(folder):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = folder / "dkim-ed25519.pem"
    public = _write_pem(ed25519.Ed25519PrivateKey.generate(), key)[-32:]  # RFC 8410 SPKI ends in the key
    return key, f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"


def ed25519_seed_key(folder):
    import nacl.signing

    signing = nacl.signing.SigningKey.generate()
    key = folder / "dkim-ed25519.seed"
    key.write_bytes(base64.b64encode(bytes(signing)) + b"\n")
    return key, f"v=DKIM1; k=ed25519; p={base64.b64encode(bytes(signing.verify_key)).decode()}"


def dns_stub(record: str):
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        return record.encode() if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    dnsfunc.asked = asked
    return dnsfunc


def issue_settings(tmp_path, key, algorithm):
    extra = f"""
        [mail.dkim]
        enabled = true
        selector = "{SELECTOR}"
        private_key_file = "{key.name}"
        algorithm = "{algorithm}"
        """
    settings = load_settings(write_config(tmp_path, extra=extra))
    assert settings.mail.dkim.private_key_file == key  # relative to the config file
    return settings


def real_issue_message(settings):
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    issue = draft_issue(engine, settings, "2026-W48").issue
    with session_scope(engine) as session:
        compiled = compile_issue(build_issue_view(session, settings, issue))
    engine.dispose()
    template = build_template(settings, compiled)
    recipient = IssueRecipient("reader@example.com", "Rëader", 7, f"i{issue.id}-d1")
    message, _ = issue_message(settings, TEST_SECRET, template, recipient, datetime(2026, 11, 26, 8, tzinfo=UTC))
    return message.data, template, recipient


def signed_headers(data: bytes) -> list[str]:
    header = data.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header)
    signature = next(line for line in unfolded.split("\r\n") if line.startswith("DKIM-Signature:"))
    tags = dict(part.strip().split("=", 1) for part in signature.split(":", 1)[1].split(";") if "=" in part)
    return [name.strip().lower() for name in tags["h"].replace(" ", "").split(":")]


def tamper(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


@pytest.mark.parametrize("make_key,algorithm", [(rsa_key, "rsa-sha256"), (ed25519_pem_key, "ed25519-sha256"),
                                                (ed25519_seed_key, "ed25519-sha256")],
                         ids=["rsa", "ed25519-pem", "ed25519-seed"])
def test_issue_messages_are_signed_and_verify(tmp_path, make_key, algorithm):
    key, record = make_key(tmp_path)
    settings = issue_settings(tmp_path, key, algorithm)
    data, _, _ = real_issue_message(settings)
    assert data.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())  # the signature goes first
    dnsfunc = dns_stub(record)
    assert dkim.verify(data, dnsfunc=dnsfunc)
    assert dnsfunc.asked == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()]
    h = signed_headers(data)
    assert set(REQUIRED) <= set(h), h
    assert "x-weekly-verdicts-delivery" not in h

    # One byte of a signed header, or of the body, changed: the signature no longer holds.
    assert not dkim.verify(tamper(data, b"List-Unsubscribe=One-Click", b"List-Unsubscribe=One-Clock"),
                           dnsfunc=dnsfunc)
    subject = re.search(rb"\r\nSubject: ([^\r]*)", data).group(1)
    assert not dkim.verify(tamper(data, b"\r\nSubject: " + subject, b"\r\nSubject: " + subject[:-1] + b"!"),
                           dnsfunc=dnsfunc)
    to_line = re.search(rb"\r\nTo: [^\r]*", data).group(0)
    assert not dkim.verify(tamper(data, to_line, to_line.replace(b"reader@", b"reades@")), dnsfunc=dnsfunc)
    # An unsigned header may change (and the record of another key does not verify).
    assert dkim.verify(data.replace(b"X-Weekly-Verdicts-Delivery: i", b"X-Weekly-Verdicts-Delivery: j"),
                       dnsfunc=dnsfunc)


def test_the_key_is_read_once_per_process(tmp_path):
    key, record = rsa_key(tmp_path)
    settings = issue_settings(tmp_path, key, "rsa-sha256")
    first = wv_dkim.signer_for(settings)
    assert wv_dkim.signer_for(settings) is first
    data, template, recipient = real_issue_message(settings)
    key.unlink()  # a second message must not need the file again
    again, _ = issue_message(settings, TEST_SECRET, template, recipient, datetime(2026, 11, 26, 9, tzinfo=UTC))
    assert again.data.startswith(b"DKIM-Signature:") and dkim.verify(again.data, dnsfunc=dns_stub(record))


def test_dkim_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match="selector and private_key_file"):
        load_settings(write_config(tmp_path, extra="[mail.dkim]\nenabled = true\n"))
    with pytest.raises(ConfigError, match="not a DNS name"):
        load_settings(write_config(tmp_path, extra='[mail.dkim]\nselector = "bad selector"\n'))
    (tmp_path / "junk.pem").write_text("not a key")
    settings = load_settings(write_config(tmp_path, extra="""
        [mail.dkim]
        enabled = true
        selector = "s1"
        private_key_file = "junk.pem"
        """))
    with pytest.raises(ConfigError, match="not a PEM RSA private key"):
        wv_dkim.make_signer(settings.mail.dkim, settings.mail.from_address)
    settings.mail.dkim.algorithm = "ed25519-sha256"
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        wv_dkim.make_signer(settings.mail.dkim, settings.mail.from_address)
    off = load_settings(write_config(tmp_path))
    assert wv_dkim.signer_for(off) is None
