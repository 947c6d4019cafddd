import smtplib
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from newsletter.config import SmtpSettings
from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.smtp import SmtpTransport
from tests.fakes.smtp_server import free_port, start_server


@pytest.fixture
def smtp_server():
    controller, handler = start_server()
    yield controller, handler
    controller.stop()


def message(to: str, n: int) -> OutgoingMessage:
    data = (f"From: a@sender.example\r\nTo: {to}\r\nSubject: n{n}\r\nMessage-ID: <{n}@sender.example>\r\n\r\n"
            f"body {n}\r\n.leading dot\r\n").encode()
    return OutgoingMessage("bounces@sender.example", to, data, f"ref-{n}")


def test_messages_arrive_byte_for_byte_over_one_connection(smtp_server):
    controller, handler = smtp_server
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=1))
    outgoing = [message(f"reader{n}@example.com", n) for n in range(5)]
    results = transport.send(outgoing)
    transport.close()
    assert [r.outcome for r in results] == [Outcome.sent] * 5
    assert len(handler.messages) == 5
    assert len({m.session for m in handler.messages}) == 1  # one reused connection
    for sent, got in zip(outgoing, handler.messages):
        assert got.data == sent.data  # dot-stuffing undone, CRLF preserved
        assert got.mail_from == "bounces@sender.example" and got.rcpt_tos == [sent.recipient]


@pytest.mark.parametrize("helo_name, expected", [
    ("Mail.Verdicts.example.", "mail.verdicts.example"), ("[192.0.2.7]", "[192.0.2.7]"),
    ("[ipv6:2001:DB8::1]", "[IPv6:2001:db8::1]"),
    ("", smtplib.SMTP().local_hostname),  # smtplib's own default: the FQDN, or the address as a literal
])
def test_every_session_greets_with_the_configured_name(smtp_server, helo_name, expected):
    """EHLO names the sending host as configured (normalised), else as smtplib itself would, on
    every session: the first and the ones opened after max_messages_per_connection."""
    controller, handler = smtp_server
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=1,
                                           max_messages_per_connection=2, helo_name=helo_name))
    results = transport.send([message(f"reader{n}@example.com", n) for n in range(5)])
    transport.close()
    assert [r.outcome for r in results] == [Outcome.sent] * 5
    assert handler.ehlo_names == [expected] * 3  # 2 + 2 + 1 messages


def test_replies_are_mapped_per_recipient(smtp_server):
    controller, handler = smtp_server
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5))
    results = transport.send([message("unknown@example.com", 1), message("later@example.com", 2),
                              message("fine@example.com", 3)])
    transport.close()
    assert results[0].outcome == Outcome.failed and results[0].hard_bounce and "5.1.1" in results[0].error
    assert results[1].outcome == Outcome.retry and not results[1].hard_bounce
    assert results[2].outcome == Outcome.sent
    assert [m.rcpt_tos for m in handler.messages] == [["fine@example.com"]]


def test_reconnects_after_the_server_restarts():
    controller, handler = start_server()
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5))
    assert transport.send([message("a@example.com", 1)])[0].outcome == Outcome.sent
    controller.stop()  # the pooled connection is now dead
    restarted = Controller(handler, hostname="127.0.0.1", port=controller.port, decode_data=False)
    restarted.start()
    try:
        assert transport.send([message("b@example.com", 2)])[0].outcome == Outcome.sent
        transport.close()
    finally:
        restarted.stop()
    assert len({m.session for m in handler.messages}) == 2


def test_an_unreachable_server_means_retry_not_crash():
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2))
    result = transport.send([message("a@example.com", 1)])[0]
    assert result.outcome == Outcome.retry and "connection" in result.error
    parsed = message_from_bytes(message("a@example.com", 1).data, policy=policy.default)
    assert parsed["Subject"] == "n1"


def self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, made here (cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_implicit_tls_sends_the_same_bytes(tmp_path):
    """Over TLS the DATA pieces are joined (an SSL socket cannot gather them); the server still
    gets every byte, leading dots included."""
    import ssl

    from tests.fakes.smtp_server import RecordingHandler

    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False,
                            ssl_context=server_context)
    controller.start()
    try:
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=1,
                                               security="tls"))
        transport.tls_context = ssl.create_default_context(cafile=cert)  # trust this test's own certificate
        outgoing = [message(f"reader{n}@example.com", n) for n in range(3)]
        results = transport.send(outgoing)
        transport.close()
    finally:
        controller.stop()
    assert [r.outcome for r in results] == [Outcome.sent] * 3
    assert [m.data for m in handler.messages] == [m.data for m in outgoing]


def test_over_tls_a_slow_end_of_data_reply_is_waited_for(tmp_path):
    """A TLS session keeps CPython's own timeout (not the kernel's): it is raised for the wait for
    each message's end-of-data reply, which the server gives after a second, past the session's
    0.3 s; every message arrives once."""
    import ssl

    from tests.fakes.smtp_server import RecordingHandler

    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    handler = RecordingHandler(delay=1.0)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False,
                            ssl_context=server_context)
    controller.start()
    try:
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=0.3,
                                               data_done_timeout=20, pool_size=1, security="tls"))
        transport.tls_context = ssl.create_default_context(cafile=cert)
        results = transport.send([message(f"reader{n}@example.com", n) for n in range(2)])
        transport.close()
    finally:
        controller.stop()
    assert [r.outcome for r in results] == [Outcome.sent] * 2
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == ["reader0@example.com", "reader1@example.com"]


@pytest.mark.parametrize("lease,timeout,budget", [(300, 30, 120.0), (120, 10, 50.0), (10, 5, 2.5), (60, 1, 29.0)])
def test_the_time_budget_leaves_the_lease_room_for_the_last_wait_and_the_record(tmp_path, lease, timeout, budget):
    """A batch must be sent and recorded within its lease, or a second worker takes it over while
    the first is still sending and the readers get it twice (an outside review sent 20 of 25
    readers two copies with `lease_seconds = 10` and the old fixed 120 s budget). The budget is
    half the lease less the transport's timeout, at most 120 s, at least a quarter of the lease;
    SMTP's longer wait for end-of-data replies ends at half the lease (`wait_limit`)."""
    from newsletter.config import load_settings
    from newsletter.delivery.transports import make_transport
    from tests.conftest import write_config

    config = write_config(tmp_path, extra=f"[mail.smtp]\ntimeout = {timeout}\n[delivery]\nlease_seconds = {lease}\n")
    config.write_text(config.read_text().replace('transport = "file"', 'transport = "smtp"'))
    transport = make_transport(load_settings(config))
    try:
        assert transport.time_budget == budget and transport.wait_limit == lease / 2
    finally:
        transport.close()
