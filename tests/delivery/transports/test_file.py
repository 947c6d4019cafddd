"""The file outbox: whole messages under `<reference>.eml`, and nothing else, even when a write fails."""

from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.file import FileTransport


def message(reference: str) -> OutgoingMessage:
    data = f"To: a@example.com\r\nSubject: {reference}\r\n\r\nbody\r\n".encode()
    return OutgoingMessage("from@example.com", "a@example.com", data, reference)


def test_a_message_lands_whole_under_its_reference_and_a_retry_replaces_it(tmp_path):
    transport = FileTransport(tmp_path)
    first = transport.send([message("i1-d1"), message("i1-d2")])
    assert [r.outcome for r in first] == [Outcome.sent] * 2
    again = transport.send([message("i1-d1")])
    assert again[0].provider_id == "i1-d1.eml"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i1-d1.eml", "i1-d2.eml"]
    assert (tmp_path / "i1-d1.eml").read_bytes() == message("i1-d1").data


def test_a_failed_write_is_a_retry_and_leaves_no_partial_file(tmp_path):
    transport = FileTransport(tmp_path)
    (tmp_path / "i1-d3.eml").mkdir()  # the rename onto it fails
    results = transport.send([message("i1-d3"), message("i1-d4")])
    assert results[0].outcome == Outcome.retry and "file outbox" in results[0].error
    assert results[1].outcome == Outcome.sent  # one failure does not stop the batch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i1-d3.eml", "i1-d4.eml"]  # no temporary left
    assert not list(tmp_path.glob(".tmp-*"))
