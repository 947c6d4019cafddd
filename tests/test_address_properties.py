"""Properties (issue 14.2): whatever name and address a reader types, every mail names exactly them.

From the signup form (the FastAPI app served by uvicorn, as tests/web does) to the bytes on the wire: the confirmation goes through
the real SMTP transport to an aiosmtpd server that offers SMTPUTF8 and through the file transport;
an issue goes to a reader with such a name the same way. The To header, parsed with Python's
email parser (policy.default), always holds exactly one address, the reader's, and RCPT TO is
exactly the reader. Examples are few and derandomized: the machine is small and shared. The
rig runs on SQLite and on PostgreSQL (the backends store and return the name differently).
"""

from __future__ import annotations

import string
from email import message_from_string, policy
from email.header import decode_header, make_header
from pathlib import Path

import idna
import pytest
import requests
from email_validator import validate_email
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update
from sqlmodel import select

from newsletter.config import SmtpSettings, load_settings
from newsletter.db import make_engine, session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports.file import FileTransport
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.delivery.mailqueue import send_pending
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, TransactionalMail
from tests.conftest import TEST_SECRET, write_config
from tests.db_templates import migrate_fresh, sample_content
from tests.fakes.smtp_server import free_port, start_server
from tests.web.conftest import start_live

PROPERTY = settings(max_examples=25, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Names that broke or could break a parser that reads them as addresses (issue 14).
TRICKY_NAMES = [
    "Doe, Jane", "x <someone@else.example>(", '"Jane" <jane@evil.example>, bob@evil.example',
    "=?utf-8?q?bob=40evil.example?=", "O'Brien (Dev) [ops]; team", "Zoë 👩‍💻 Ünïcode", "מרים כהן",
    "مرحبا, <a@b.example>", "ends with a backslash\\", "Bcc: victim@example.com", "  spaced   out  ",
    "@", "<>", "a" * 100, "é" * 100, "=?", "\"\\\"", "x)y(z", "Рик <rick@evil.example>",
]
NAMES = st.one_of(
    st.sampled_from(TRICKY_NAMES),
    st.text(st.characters(categories=("L", "M", "N", "P", "S", "Zs")), max_size=100),
)
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
DOMAINS = ["example.com", "Example.ORG", "bücher.de", "xn--bcher-kva.de", "MÜNCHEN.de", "日本語.jp",
           "xn--wgv71a119e.jp", "mail.exämple.co.uk", "sub.domain.example.net"]
LOCALS = st.one_of(
    st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=3).map(".".join),
    st.sampled_from(["üser", "用户", "δοκιμή", "jörg.müller"]),  # need SMTPUTF8
)
TAGS = st.one_of(st.just(""), st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
                 .map(lambda tag: "+" + tag))
ADDRESSES = st.builds(lambda local, tag, domain: f"{local}{tag}@{domain}", LOCALS, TAGS, st.sampled_from(DOMAINS))


class Rig:
    """One app, database, aiosmtpd server (with SMTPUTF8) and file outbox for all examples."""

    def __init__(self, tmp_path: Path, monkeypatch, db_url: str) -> None:
        monkeypatch.setenv("NEWSLETTER_SITE__BASE_URL", f"http://127.0.0.1:{free_port()}")
        config = write_config(tmp_path, db_url, extra="""
            [web]
            form_min_seconds = 0
            signups_per_ip_per_hour = 100000
            signups_per_network_per_hour = 100000
            signups_per_address_per_hour = 100000
            """)
        self.settings = load_settings(config)
        self.engine = make_engine(self.settings.database.url)
        migrate_fresh(self.engine)
        sample_content(self.engine)
        self.app, self.server, self.thread = start_live(self.settings, self.engine)
        self.http = requests.Session()
        self.controller, self.handler = start_server(smtputf8=True)
        self.smtp = SmtpTransport(SmtpSettings(host="127.0.0.1", port=self.controller.port, timeout=10, pool_size=1))
        self.outbox = FileTransport(tmp_path / "outbox")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.smtp.close()
        self.controller.stop()
        self.engine.dispose()

    def reset(self) -> None:
        """Every example starts with no readers, so no rule about known addresses interferes."""
        with session_scope(self.engine) as session:
            for table in (Delivery, TransactionalMail, ConsentEvent, SubscriberTopic, Subscriber):
                session.execute(delete(table))
        self.handler.messages.clear()

    def signup(self, email: str, name: str):
        base = self.settings.site.base_url
        page = self.http.get(base + "/").text
        token = page.split('name="form_token" value="', 1)[1].split('"', 1)[0]
        return self.http.post(base + "/subscribe", data={"form_token": token, "email": email, "name": name},
                              allow_redirects=False)


@pytest.fixture
def rig(tmp_path, monkeypatch, db_url):
    rig = Rig(tmp_path, monkeypatch, db_url)
    yield rig
    rig.close()


def expected(typed: str) -> tuple[str, str]:
    """(stored form, wire form) of a typed address, from email-validator and idna themselves."""
    valid = validate_email(typed, check_deliverability=False, allow_smtputf8=True)
    stored = valid.normalized.lower()
    local, _, domain = stored.rpartition("@")
    return stored, f"{local}@{idna.encode(domain, uts46=True).decode()}"


def display_name(header: str, parsed: str) -> str:
    """The display name a reader's mail program shows for the raw `To` value `header`. Adjacent
    encoded words (a long non-ASCII name is folded into several) are joined with the whitespace
    between them ignored, as RFC 2047 section 6.2 requires. Python 3.11's structured-header parser
    keeps that whitespace (CPython gh-128110, fixed upstream in 2026), so such a phrase is decoded
    with email.header's RFC 2047 decoder, which follows 6.2; anything else is `parsed` as given."""
    phrase = header.rpartition("<")[0].strip()
    if "=?" not in phrase:
        return parsed
    return str(make_header(decode_header(phrase)))


def assert_names_only(data: bytes, wire: str, name: str) -> None:
    """The message's recipients are exactly `wire`, under the display name `name`. Headers may be
    UTF-8 (RFC 6532, sent with SMTPUTF8): Python's bytes parser would keep those bytes as
    surrogates, so the message is decoded as UTF-8 first (its bodies are ASCII: quoted-printable)."""
    mail = message_from_string(data.decode("utf-8"), policy=policy.default)
    assert len(mail.get_all("To")) == 1
    for field in ("Cc", "Bcc", "Resent-To", "Resent-Cc"):
        assert mail[field] is None, field
    addresses = mail["To"].addresses
    assert len(addresses) == 1, mail["To"]
    assert addresses[0].addr_spec == wire
    raw = message_from_string(data.decode("utf-8"), policy=policy.compat32)["To"]  # as written, folded
    shown = display_name(raw, addresses[0].display_name)
    assert " ".join(shown.split()) == " ".join(name.split())


@PROPERTY
@given(name=NAMES, email=ADDRESSES)
@example(name="Doe, Jane", email="user@bücher.de")
@example(name="x <someone@else.example>(", email="reader@example.com")
@example(name="Ünïcode Reader", email="üser@bücher.de")
@example(name="é" * 100, email="reader@example.com")  # folded into several encoded words
def test_a_confirmation_names_exactly_the_reader(rig, name, email):
    rig.reset()
    response = rig.signup(email, name)
    if len(name.strip()) > 100:
        assert response.status_code == 422 and "Longer than 100" in response.text
        return
    assert response.status_code == 200 and "Check your inbox" in response.text, response.text[-800:]
    stored, wire = expected(email)
    with session_scope(rig.engine) as session:
        reader = session.exec(select(Subscriber)).one()
        row = session.exec(select(TransactionalMail)).one()
    assert (reader.email, reader.name, row.kind) == (stored, name.strip(), "confirm")

    assert send_pending(rig.engine, rig.settings, rig.smtp, TEST_SECRET) == 1
    [received] = rig.handler.messages
    assert received.rcpt_tos == [wire]
    assert_names_only(received.data, wire, reader.name)

    with session_scope(rig.engine) as session:  # once more through the file outbox
        session.execute(update(TransactionalMail).values(state="queued", next_attempt_at=None))
    assert send_pending(rig.engine, rig.settings, rig.outbox, TEST_SECRET) == 1
    assert_names_only(rig.outbox.path_for(f"t{row.id}").read_bytes(), wire, reader.name)


@PROPERTY
@given(name=NAMES, email=ADDRESSES)
@example(name="x <someone@else.example>(", email="Reader+tag@xn--bcher-kva.de")
@example(name="Zoë 👩‍💻 Ünïcode " * 6, email="reader@example.com")
def test_an_issue_names_exactly_the_reader(rig, name, email):
    rig.reset()
    stored, wire = expected(email)
    name = name.strip()[:100]
    with session_scope(rig.engine) as session:
        session.add(Subscriber(email=stored, name=name, status="active"))
    issue_id = draft_issue(rig.engine, rig.settings, "2026-W48").issue.id
    for transport in (rig.smtp, rig.outbox):
        with session_scope(rig.engine) as session:
            session.execute(delete(Delivery))
            session.execute(update(Issue).where(Issue.id == issue_id).values(state="draft"))
        assert start_send(rig.engine, issue_id).enqueued == 1
        report = deliver(rig.engine, rig.settings, transport, TEST_SECRET, issue_id)
        assert report.sent == 1, report
    [received] = rig.handler.messages
    assert received.rcpt_tos == [wire]
    assert_names_only(received.data, wire, name)
    with session_scope(rig.engine) as session:
        delivery_id = session.exec(select(Delivery.id)).one()
    assert_names_only(rig.outbox.path_for(f"i{issue_id}-d{delivery_id}").read_bytes(), wire, name)


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES, email=ADDRESSES)
@example(name="=?utf-8?q?bob=40evil.example?=", email="reader@example.com")
@example(name="é" * 100, email="reader@example.com")
def test_json_providers_get_exactly_the_reader(tmp_path, name, email):
    """The HTTP providers take `To` as a string they parse themselves: it too names only the reader."""
    from datetime import UTC, datetime

    from newsletter.issues.links import IssueRecipient, issue_message
    from newsletter.delivery.transactional import template_for

    json_settings = load_settings(write_config(tmp_path))  # bytes and JSON fields come from one builder
    stored, wire = expected(email)
    name = name.strip()[:100]
    message, _ = issue_message(json_settings, TEST_SECRET, template_for(json_settings, "welcome"),
                               IssueRecipient(stored, name, 1, "i1-d1", "0123456789abcdef"), datetime.now(UTC))
    assert message.recipient == message.content.recipient == wire
    parsed = policy.default.header_factory("To", message.content.to_header)
    assert [a.addr_spec for a in parsed.addresses] == [wire]
    shown = display_name(message.content.to_header, parsed.addresses[0].display_name)
    assert " ".join(shown.split()) == " ".join(name.split())
