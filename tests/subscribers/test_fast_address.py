"""normalize_email's fast path for plain addresses (service._plain_address) must agree with the
validator: the same stored form for every address it accepts, and it accepts nothing the
validator refuses. The import of a million rows relies on it (bench/imports.py)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from newsletter.subscribers.service import _plain_address

LOCAL = st.text(alphabet="aZ09._%+-!#'\"é@ ", min_size=0, max_size=70)
DOMAINS = st.sampled_from(["example.com", "EXAMPLE.org", "xn--bcher-kva.example", "bücher.example", "localhost",
                           "a.invalid", "sub.domain.co.uk", "123.com", "-bad.com", "a..b.com", "x.y", "mail.test",
                           "[127.0.0.1]", "ex_ample.com", "example.com.", "e.123", "a" * 64 + ".com", ""])


def _validator(address: str) -> str | None:
    try:
        result = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    return None if result.smtputf8 else result.normalized.lower()


@settings(max_examples=300, derandomize=True, deadline=None)
@given(LOCAL, DOMAINS)
@example("John.Doe", "Example.COM")
@example("a" * 65, "example.com")
@example(".a", "example.com")
@example("a.", "example.com")
def test_the_fast_path_agrees_with_the_validator(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    fast = _plain_address(address)
    if fast is not None:
        assert fast == _validator(address), address
