"""An editor's test copy (`issue test`): every personal link in it answers with what it does in a
reader's copy, instead of "This link does not work" (outside trial); it changes nothing, and its
comparison links work before the issue is sent.

The copy is made and sent by the real path (workflow.sending.test_send, as the CLI and the console send it, into the file outbox); its links
are followed over HTTP against a live server, as an editor's mail program and browser would.
"""

import re
from email import message_from_bytes, policy

from sqlalchemy import func, select

from newsletter.content.models import Vote
from newsletter.db import session_scope
from newsletter.editors.audit import Actor
from newsletter.workflow import sending
from newsletter.issues.drafting import draft_issue
from newsletter.feedback.models import TrackingEvent
from newsletter.subscribers.models import ConsentEvent
from tests.conftest import TEST_SECRET

HEADING = "This link is from a test copy"


def _test_copy(live):
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    [(address, outcome)] = sending.test_send(live.engine, live.settings, TEST_SECRET, Actor.cli(), issue.id,
                                         ['"Doe, Jane" <jane@example.org>'])
    assert (address, outcome) == ("jane@example.org", "sent")
    [eml] = [path for path in live.settings.mail.file.dir.glob("*.eml") if "test-" in path.name]
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    return issue, message, message.get_body(("html",)).get_content()


def _counts(live) -> tuple[int, int, int]:
    with session_scope(live.engine) as session:
        return tuple(session.execute(select(func.count()).select_from(model)).scalar_one()
                     for model in (Vote, ConsentEvent, TrackingEvent))


def test_every_personal_link_of_a_test_copy_says_what_it_does_and_changes_nothing(live_factory, db_url):
    live = live_factory(db_url, TRACKING__OPENS="true", TRACKING__CLICKS="true")
    issue, message, html = _test_copy(live)
    before = _counts(live)
    unsubscribe = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", message["List-Unsubscribe"]).group(1)
    preferences = re.search(r'href="([^"]+/preferences/[^"]+)"', html).group(1)
    votes = sorted(set(re.findall(r'href="([^"]+/vote/[^"]+)"', html)))
    assert votes, "the sample issue carries vote buttons"

    for url, says in [(unsubscribe, "unsubscribes its reader"), (preferences, "opens its reader&#39;s preferences"),
                      (votes[0], "records its reader&#39;s vote")]:
        page = live.http.get(url)
        assert (page.status_code, HEADING in page.text, says in page.text) == (200, True, True), url
        assert "does not work" not in page.text
    # What a mail program's one-click and a page's buttons send: answered alike, nothing stored.
    one_click = live.http.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert (one_click.status_code, HEADING in one_click.text) == (200, True)
    saved = live.http.post(preferences, data={"action": "save", "topics": ["coding"], "pause_weeks": "2"})
    assert (saved.status_code, HEADING in saved.text) == (200, True)
    voted = live.http.post(votes[0])
    assert (voted.status_code, HEADING in voted.text) == (200, True)
    # A draft's comparison links work from its test copy, and count no click.
    click = re.search(r'href="([^"]+/c/[^"]+/0)"', html).group(1)
    answer = live.http.get(click, allow_redirects=False)
    assert (answer.status_code, answer.headers["location"].startswith(f"{live.url}/compare/")) == (303, True)
    assert live.http.get(re.search(r'<img src="([^"]+/o/[^"]+\.gif)"', html).group(1)).status_code == 200
    # Bound to its issue: the same token opens nothing of another draft (outside review).
    other = draft_issue(live.engine, live.settings, "2026-W47").issue
    elsewhere = click.replace(f"/{issue.id}/0", f"/{other.id}/0")
    assert (elsewhere != click, live.http.get(elsewhere, allow_redirects=False).status_code) == (True, 404)
    assert _counts(live) == before


def test_a_mangled_test_copy_link_is_still_refused(live):
    """The test copy's answer is for genuine test-copy links only: a mangled one still does not
    work, nor a vote link whose comparison or choice was changed."""
    _issue, message, html = _test_copy(live)
    unsubscribe = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", message["List-Unsubscribe"]).group(1)
    mangled = unsubscribe[:-3] + ("aaa" if not unsubscribe.endswith("aaa") else "bbb")
    page = live.http.get(mangled)
    assert (page.status_code, "This link does not work" in page.text, HEADING in page.text) == (400, True, False)
    vote = re.search(r'href="([^"]+/vote/[^"]+)"', html).group(1)
    token_part = vote.rsplit("/", 2)[0]
    wrong = live.http.get(f"{token_part}/no-such-comparison/nonsense")
    assert (wrong.status_code, HEADING in wrong.text) == (400, False)
