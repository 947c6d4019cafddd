"""The bounce mailbox against real-world bounces: the 111 messages of flufl.bounce's test corpus
(tests/data/bounces/, Apache-2.0, see its README), each turned into a bounce of our own mail.

Each corpus bounce gets its own reader: the addresses the bounce names (the expected addresses
of flufl.bounce's own tests) become that reader's address; where the bounce returns headers,
their Message-ID becomes the Message-ID of the delivery we sent that reader; with VERP on, the
bounce is delivered to that delivery's VERP address (read back from the Return-Path the file
transport wrote), as Delivered-To, X-Original-To or To. The class each should get (hard, soft,
deferred) was read off the server's words by a person (expected.json), not by the code.

Target: at least 95% attributed to the right reader with the right class, 0 events for a wrong
reader, 0 crashes, with VERP on and off.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.feedback.bounces import BounceReport, process_message
from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.feedback.models import WebhookEvent
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import TEST_SECRET, write_config
from tests.db_templates import migrate_fresh, sample_content
from tests.feedback.conftest import WEEK

CORPUS = Path(__file__).parents[1] / "data" / "bounces"
EXPECTED: dict[str, dict] = json.loads((CORPUS / "expected.json").read_text())
BOUNCE_ADDRESS = "bounces@bounce.weeklyverdicts.example"
_MESSAGE_ID = re.compile(rb"(?im)^([ \t>]*Message-ID:[ \t]*)(?:<[^\s<>]+@[^\s<>]+>|[^\s<>=]+@[^\s<>=]+)")


@dataclass
class Case:
    name: str
    reader: str
    expected: str
    originals: list[str]


def reader_for(index: int, addresses: list[str]) -> str:
    local, _, domain = addresses[0].lower().rpartition("@")
    return f"{local}r{index}@{domain}"


CASES = [Case(name, reader_for(i, spec["addresses"]), spec["class"], spec["addresses"])
         for i, (name, spec) in enumerate(sorted(EXPECTED.items()))]


def rewrite(data: bytes, case: Case, message_id: str, verp: str | None, index: int) -> bytes:
    """The corpus bounce as a bounce of the message `message_id` we sent to case.reader."""
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        head, sep, body = data.partition(b"\r\n\r\n")
    for original in case.originals:
        pattern = re.compile(re.escape(original.encode()), re.I)
        head, body = pattern.sub(case.reader.encode(), head), pattern.sub(case.reader.encode(), body)
        local = original.rpartition("@")[0].encode()
        if not pattern.search(data):  # named by its local part only (AOL, Yale): rename that
            new_local = case.reader.rpartition("@")[0].encode()
            word = re.compile(rb"(?<![\w.+-])" + re.escape(local) + rb"(?![\w+-])", re.I)
            head, body = word.sub(new_local, head), word.sub(new_local, body)
    body = _MESSAGE_ID.sub(lambda m: m.group(1) + message_id.encode(), body)
    if verp:
        header = (b"Delivered-To", b"X-Original-To", b"To")[index % 3]
        head = re.sub(rb"(?im)^To:[^\n]*\n(?:[ \t][^\n]*\n)*", b"", head + b"\n")[:-1] if header == b"To" else head
        line = header + b": " + verp.encode()
        if head.startswith(b"From "):  # an mbox From_ line stays first
            first, nl, rest = head.partition(b"\n")
            head = first + nl + line + b"\n" + rest
        else:
            head = line + b"\n" + head
    return _encoded_parts(head + sep + body, message_id)


def _encoded_parts(data: bytes, message_id: str) -> bytes:
    """Returned headers inside a quoted-printable or base64 part: rewritten decoded, sent 8bit."""
    msg = message_from_bytes(data, policy=policy.compat32)
    changed = False
    for part in msg.walk():
        encoding = str(part.get("Content-Transfer-Encoding") or "").lower()
        if part.is_multipart() or encoding not in ("quoted-printable", "base64"):
            continue
        text = (part.get_payload(decode=True) or b"")
        if not re.search(rb"(?im)^[ \t>]*message-id:", text):
            continue
        text = _MESSAGE_ID.sub(lambda m: m.group(1) + message_id.encode(), text)
        del part["Content-Transfer-Encoding"]
        part["Content-Transfer-Encoding"] = "8bit"
        part.set_payload(text.decode("latin-1"))
        changed = True
    return msg.as_bytes() if changed else data


@dataclass
class Score:
    right: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    wrong_readers: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    by: Counter = field(default_factory=Counter)  # how the right ones were attributed


def sent_issue(tmp_path: Path, verp: bool):
    settings = load_settings(write_config(tmp_path))
    if verp:
        settings.mail = settings.mail.model_copy(update={"verp": True, "bounce_address": BOUNCE_ADDRESS})
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    with session_scope(engine) as session:
        for case in CASES:
            upsert_active(session, case.reader, "", [], "import", UpsertResult())
    issue = draft_issue(engine, settings, WEEK).issue
    start_send(engine, issue.id)
    transport = make_transport(settings)
    deliver(engine, settings, transport, TEST_SECRET, issue.id)
    transport.close()
    sent = {}
    for path in settings.mail.file.dir.glob("i*.eml"):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        return_path = str(mail["Return-Path"] or "").strip("<>") or None
        sent[mail["To"].addresses[0].addr_spec] = (str(mail["Message-ID"]), return_path)
    assert len(sent) == len(CASES)
    return settings, engine, sent


def score_corpus(tmp_path: Path, verp: bool) -> Score:
    settings, engine, sent = sent_issue(tmp_path, verp)
    score = Score()
    readers = {case.reader for case in CASES}
    for index, case in enumerate(CASES):
        message_id, return_path = sent[case.reader]
        if verp:
            assert return_path and return_path.startswith("bounces+") and return_path.endswith("@bounce.weeklyverdicts.example")
        else:
            assert return_path is None
        data = rewrite((CORPUS / case.name).read_bytes(), case, message_id, return_path if verp else None, index)
        report = BounceReport()
        try:
            events = process_message(engine, settings, TEST_SECRET, data, report)
        except Exception as exc:  # counted: the target is zero
            score.crashes.append(f"{case.name}: {exc!r}")
            continue
        if report.unreadable:
            score.crashes.append(f"{case.name}: unreadable")
        touched = {event.email for event in events}
        if touched - {case.reader}:
            score.wrong_readers.append(f"{case.name}: {sorted(touched - {case.reader})}")
        kinds = {event.kind.value for event in events}
        if touched == {case.reader} and kinds == {case.expected}:
            score.right.append(case.name)
            score.by[re.search(r"by (\S+)\)$", events[0].detail).group(1)] += 1
        else:
            score.missed.append(f"{case.name}: expected {case.expected} for {case.reader}, got "
                                f"{[(e.email, e.kind.value) for e in events]}")
    with session_scope(engine) as session:  # what was stored agrees: no event for anyone else
        stored = set(session.execute(select(WebhookEvent.email)).scalars())
        assert stored <= readers
    engine.dispose()
    return score


@pytest.mark.parametrize("verp", [True, False], ids=["verp-on", "verp-off"])
def test_real_world_bounces_are_attributed_to_the_right_reader(tmp_path, verp):
    score = score_corpus(tmp_path, verp)
    total = len(CASES)
    print(f"\nVERP {'on' if verp else 'off'}: {len(score.right)}/{total} right reader and class, "
          f"{len(score.wrong_readers)} wrong readers, {len(score.crashes)} crashes; by {dict(score.by)}")
    for line in score.missed:
        print("  missed", line)
    assert total == 111
    assert score.crashes == [] and score.wrong_readers == []
    assert len(score.right) >= 0.95 * total, score.missed


def _case(name: str) -> Case:
    return next(case for case in CASES if case.name == name)


def test_with_verp_a_bounce_without_a_valid_verp_address_is_not_ours(tmp_path):
    settings, engine, sent = sent_issue(tmp_path, verp=True)
    case = _case("postfix_01.txt")  # returns the original's headers and names the reader
    message_id, return_path = sent[case.reader]
    local, _, domain = return_path.partition("@")
    tampered = f"{local[:-1]}{'1' if local[-1] == '0' else '0'}@{domain}"
    data = (CORPUS / case.name).read_bytes()
    for verp in (tampered, None):  # a forged VERP address; no VERP address at all (naming the reader)
        report = BounceReport()
        bounce = rewrite(data, case, "<someone-else@example.org>", verp, 0)
        assert case.reader.encode() in bounce
        assert process_message(engine, settings, TEST_SECRET, bounce, report) == []
        assert report.reports == 1 and report.not_ours == 1 and report.applied == 0
    with session_scope(engine) as session:
        assert session.execute(select(WebhookEvent.id)).first() is None
    engine.dispose()


def test_without_verp_only_a_reader_we_mailed_and_only_without_foreign_headers(tmp_path):
    settings, engine, sent = sent_issue(tmp_path, verp=False)
    returns_headers, returns_nothing = _case("dsn_01.txt"), _case("caiwireless_01.txt")
    foreign = rewrite((CORPUS / returns_headers.name).read_bytes(), returns_headers, "<x1@lists.example.org>",
                      None, 0)
    stranger = Case(returns_nothing.name, "stranger@example.com", "bounced_hard", returns_nothing.originals)
    unknown = rewrite((CORPUS / returns_nothing.name).read_bytes(), stranger, "<unused@example.org>", None, 0)
    for data in (foreign, unknown):
        report = BounceReport()
        assert process_message(engine, settings, TEST_SECRET, data, report) == []
        assert report.reports == 1 and report.not_ours >= 1
    with session_scope(engine) as session:
        assert session.execute(select(WebhookEvent.id)).first() is None
    engine.dispose()
