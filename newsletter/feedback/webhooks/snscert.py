"""Is the certificate behind an SNS SigningCertURL really Amazon SNS's?

The URL host check (ses.check_sns_url) already keeps us to Amazon's SNS endpoints; this checks
the certificate itself, so a certificate placed anywhere else on amazonaws.com cannot sign:

- its subject (CN or a DNS SAN) is sns.amazonaws.com (or a regional SNS host);
- it is within its validity period and not self-signed;
- it is signed by its issuer, fetched from the certificate's own Authority Information Access
  (caIssuers) URL, a CA certificate within its validity, which in turn is one of the trust
  roots or directly signed by one (the certifi bundle requests uses; tests pass their own).

Limits: one intermediate at most (Amazon's and DigiCert's SNS chains have one); no revocation
check (neither CRL nor OCSP), as AWS's own SDKs do not check it either.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

import certifi
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

SNS_SUBJECT = re.compile(r"^sns(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")


class UntrustedCertificate(Exception):
    """The certificate is not Amazon SNS's; the message names the reason."""


@lru_cache(maxsize=1)
def certifi_roots() -> tuple[x509.Certificate, ...]:
    with open(certifi.where(), "rb") as handle:
        return tuple(x509.load_pem_x509_certificates(handle.read()))


def load_certificate(data: bytes) -> x509.Certificate:
    """PEM (what SNS serves) or DER (what caIssuers URLs usually serve)."""
    try:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise UntrustedCertificate("certificate unreadable") from None


def _names(certificate: x509.Certificate) -> list[str]:
    names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        names += certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    return [name.lower() for name in names]


def _within(certificate: x509.Certificate, now: datetime, what: str) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise UntrustedCertificate(f"{what} expired or not yet valid")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _issuer_url(certificate: x509.Certificate) -> str:
    try:
        access = certificate.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except x509.ExtensionNotFound:
        raise UntrustedCertificate("certificate names no issuer (no caIssuers URL)") from None
    for item in access:
        url = str(item.access_location.value)
        if item.access_method == AuthorityInformationAccessOID.CA_ISSUERS and re.match(r"^https?://", url):
            return url
    raise UntrustedCertificate("certificate names no issuer (no caIssuers URL)")


def check_sns_certificate(certificate: x509.Certificate, now: datetime, fetch: Callable[[str], bytes],
                          roots: tuple[x509.Certificate, ...]) -> None:
    """Raise UntrustedCertificate unless `certificate` is SNS's, issued through a trusted CA."""
    if not any(SNS_SUBJECT.match(name) for name in _names(certificate)):
        raise UntrustedCertificate("certificate is not issued to sns.amazonaws.com")
    _within(certificate, now, "signing certificate")
    if certificate.issuer == certificate.subject:
        raise UntrustedCertificate("certificate is self-signed")
    for root in roots:  # issued by a root directly
        if root.subject == certificate.issuer and _signed_by(certificate, root):
            return
    url = _issuer_url(certificate)
    try:
        issuer = load_certificate(fetch(url))
    except UntrustedCertificate:
        raise
    except Exception as exc:  # network or HTTP errors of the fetcher
        raise UntrustedCertificate(f"issuer certificate unavailable ({type(exc).__name__})") from None
    if issuer.subject != certificate.issuer or not _is_ca(issuer) or not _signed_by(certificate, issuer):
        raise UntrustedCertificate("certificate is not signed by the CA it names")
    _within(issuer, now, "issuer certificate")
    if not any(root.subject == issuer.issuer and _signed_by(issuer, root) for root in roots) \
            and issuer not in roots:
        raise UntrustedCertificate("issuer certificate does not chain to a trusted root")
