"""SpamAssassin, offline (`spamassassin -L -t`), scores every mail the project sends below 0.5.

The bytes judged are the .eml files the file transport wrote for a real signup, confirmation,
address change, issue, test send, unsubscribe and editors' notice (tests/e2e/corpus.py). Network
tests (DNS blocklists, Razor, Pyzor) are off with -L, so the score is about our content and
headers alone: the one thing that scored before was a preheader painted near the background
colour (HTML_FONT_LOW_CONTRAST, +0.7).
"""

import re
import subprocess
from email import policy

import pytest


MAILS = ["confirmation", "welcome", "confirm_change", "issue", "test_send", "goodbye", "notice", "followup"]
LIMIT = 0.5


def mbox(messages: dict[str, bytes]) -> bytes:
    """The messages as one mboxrd file, each marked with its name in an X-Judged-As header (a
    name no rule scores): SpamAssassin does not keep the input's order in its output."""
    out = []
    for name, data in messages.items():
        body = re.sub(rb"(?m)^(>*From )", rb">\1", data.replace(b"\r\n", b"\n"))
        out.append(b"From judged@verdicts.example Thu Jan  1 00:00:00 2026\n" +
                   f"X-Judged-As: {name}\n".encode() + body.rstrip(b"\n") + b"\n\n")
    return b"".join(out)


def scores(spamassassin: str, messages: dict[str, bytes], prefs) -> dict[str, tuple[float, str]]:
    """{name: (score, the rules that fired)} from the X-Spam-Status header SpamAssassin adds, for
    every message in one run (Perl's start-up and rule compile are most of a single check's time)."""
    done = subprocess.run([spamassassin, "-L", "-t", "--mbox", "-p", str(prefs)], input=mbox(messages),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-1000:]
    found = {}
    for head in re.findall(rb"(?m)^From [^\n]*\n(.*?)\n\n", done.stdout, re.S):
        head = head.decode("utf-8", errors="replace")
        name = re.search(r"^X-Judged-As: (\S+)", head, re.M)
        status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+) .*?tests=(.*?)(?:\s+autolearn=|\s+version=)",
                           head, re.M | re.S)
        assert name and status, f"no X-Spam-Status in SpamAssassin's output:\n{head[:2000]}"
        found[name.group(1)] = float(status.group(1)), " ".join(status.group(2).split())
    assert set(found) == set(messages), (sorted(found), sorted(messages))
    return found


def painted(corpus) -> bytes:
    """The confirmation with its preheader painted white, as mj-preview did: the check can fail."""
    message = corpus.message("confirmation")
    part = message.get_body(("html",))
    html = part.get_content()
    changed = html.replace('class="wv-preheader" style="', 'class="wv-preheader" style="color:#ffffff;', 1)
    assert changed != html
    part.set_content(changed, subtype="html")
    return message.as_bytes(policy=policy.SMTP)


@pytest.fixture(scope="module")
def judged(spamassassin, corpus, tmp_path_factory) -> dict[str, tuple[float, str]]:
    prefs = tmp_path_factory.mktemp("spamassassin") / "user_prefs"
    prefs.write_text("")
    messages = {kind: corpus.mails[kind].read_bytes() for kind in MAILS}
    return scores(spamassassin, messages | {"painted": painted(corpus)}, prefs)


def test_every_mail_is_scored(corpus):
    assert set(corpus.mails) == set(MAILS)
    assert "<mailto:unsubscribe@" in corpus.message("issue")["List-Unsubscribe"]  # judged with both links


@pytest.mark.parametrize("kind", MAILS)
def test_spam_score_is_below_half_a_point(judged, kind):
    value, rules = judged[kind]
    assert value < LIMIT, f"{kind}: SpamAssassin scored {value} ({rules})"


def test_low_contrast_text_is_what_spamassassin_scores(judged):
    value, rules = judged["painted"]
    assert "HTML_FONT_LOW_CONTRAST" in rules and value >= LIMIT, (value, rules)
