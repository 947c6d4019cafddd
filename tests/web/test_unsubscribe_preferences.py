import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic
from newsletter.tokens import Purpose
from tests.conftest import TEST_SECRET, link_token


def add_active(live, email="reader@example.com"):
    with session_scope(live.engine) as session:
        reader = Subscriber(email=email, status="active", confirmed_at=datetime.now(UTC))
        session.add(reader)
        session.flush()
        return reader.id


def status_of(live, subscriber_id):
    with session_scope(live.engine) as session:
        return session.get(Subscriber, subscriber_id).status


def test_one_click_unsubscribe_follows_rfc_8058(live):
    reader = add_active(live)
    url = f"{live.url}/unsubscribe/{link_token(live.engine, Purpose.unsubscribe, reader)}"
    for _ in range(2):  # idempotent
        response = live.http.post(url, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers and "location" not in response.headers
        assert status_of(live, reader) == "unsubscribed"
    with session_scope(live.engine) as session:
        events = session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader)).all()
    assert [(e.kind, e.source) for e in events] == [("unsubscribed", "link")]
    assert "one-click" in events[0].detail and events[0].ip == "127.0.0.1"
    assert events[0].user_agent.startswith("python-requests/")


def test_get_shows_a_confirm_page_and_changes_nothing(live):
    reader = add_active(live)
    url = f"{live.url}/unsubscribe/{link_token(live.engine, Purpose.unsubscribe, reader)}"
    page = live.http.get(url)
    assert page.status_code == 200 and 'action="' + url + '"' in page.text
    assert "/preferences/" in page.text
    assert status_of(live, reader) == "active"
    assert live.http.post(url, data={"source": "page"}).status_code == 200
    assert status_of(live, reader) == "unsubscribed"
    assert live.deliver_mail() == 1 and "You have left" in live.mails()[-1]["Subject"]


@pytest.mark.parametrize("kind", ["forged", "altered", "wrong-purpose", "expired"])
def test_bad_tokens_change_nothing(live, kind):
    reader = add_active(live)
    token = link_token(live.engine, Purpose.unsubscribe, reader)
    if kind == "forged":
        token = link_token(live.engine, Purpose.unsubscribe, reader, secret="someone-elses-secret-" + "z" * 40)
    elif kind == "altered":
        token = token[:-3] + ("xyz" if not token.endswith("xyz") else "abc")
    elif kind == "wrong-purpose":
        token = link_token(live.engine, Purpose.preferences, reader)
    else:
        import itsdangerous

        from newsletter.tokens import timestamp_signer

        old = datetime.now(UTC) - timedelta(days=400)

        class OldSigner(itsdangerous.TimestampSigner):
            def get_timestamp(self):
                return int(old.timestamp())

        current = timestamp_signer(TEST_SECRET, "weekly-verdicts:unsubscribe")
        stale = OldSigner(current.secret_keys, salt=current.salt, digest_method=current.digest_method)
        token = stale.sign(str(reader).encode()).decode()
    response = live.http.post(f"{live.url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code in (400, 404)
    assert live.http.get(f"{live.url}/unsubscribe/{token}").status_code in (400, 404)
    assert status_of(live, reader) == "active"


def test_unsubscribing_during_a_send_skips_the_reader_from_that_moment(live):
    stays, leaves = add_active(live, "stays@example.com"), add_active(live, "leaves@example.com")
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    assert start_send(live.engine, issue.id).enqueued == 2
    live.http.post(f"{live.url}/unsubscribe/{link_token(live.engine, Purpose.unsubscribe, leaves)}",
                   data={"List-Unsubscribe": "One-Click"})
    report = deliver(live.engine, live.settings, make_transport(live.settings), TEST_SECRET, issue.id)
    assert (report.sent, report.skipped) == (1, 1)
    del stays


def test_preferences_topics_pause_address_and_leave(live):
    reader = add_active(live)
    url = f"{live.url}/preferences/{link_token(live.engine, Purpose.preferences, reader)}"
    page = live.http.get(url)
    assert page.status_code == 200 and "reader@example.com" in page.text and "Developer Tools" in page.text
    saved = live.http.post(url, data={"action": "save", "topics": ["Developer Tools", "Not A Topic"],
                                      "pause_weeks": "4"})
    assert saved.status_code == 200 and "Saved." in saved.text and "Paused until" in saved.text
    with session_scope(live.engine) as session:
        topics = session.exec(select(SubscriberTopic.category).where(SubscriberTopic.subscriber_id == reader)).all()
        paused = session.get(Subscriber, reader).paused_until
    assert topics == ["Developer Tools"]
    assert timedelta(days=27) < paused - datetime.now(UTC) < timedelta(days=29)
    # A paused reader is not enqueued for this week's issue.
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    assert start_send(live.engine, issue.id).enqueued == 0

    bad = live.http.post(url, data={"action": "save", "pause_weeks": "many"})
    assert bad.status_code == 422 and "Choose a number of weeks" in bad.text
    moved = live.http.post(url, data={"action": "change_email", "new_email": "New@Example.com"})
    assert moved.status_code == 200 and "new@example.com" in moved.text
    assert live.deliver_mail() == 1
    mail = live.mails()[-1]
    assert mail["To"] == "new@example.com"
    assert status_of(live, reader) == "active"
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader).email == "reader@example.com"  # not before confirming
    confirmed = live.http.post(live.link_in(mail, "confirm"))
    assert "Address changed" in confirmed.text and "will reach you there" in confirmed.text
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader).email == "new@example.com"
    left = live.http.post(url, data={"action": "unsubscribe"})
    assert left.status_code == 200 and status_of(live, reader) == "unsubscribed"


def test_a_new_address_confirmed_after_leaving_is_not_told_issues_will_come(live):
    """A reader asks to move to a new address, leaves, then follows the confirmation link: the
    address is theirs now, but the page said "You are in … the next issue will reach you" while
    they stayed unsubscribed (outside trial)."""
    reader = add_active(live)
    url = f"{live.url}/preferences/{link_token(live.engine, Purpose.preferences, reader)}"
    assert live.http.post(url, data={"action": "change_email", "new_email": "neue@bücher.de"}).status_code == 200
    assert live.deliver_mail() == 1
    link = live.link_in(live.mails()[-1], "confirm")
    assert live.http.post(url, data={"action": "unsubscribe"}).status_code == 200
    confirmed = live.http.post(link)
    assert confirmed.status_code == 200 and "Address changed" in confirmed.text, confirmed.text
    assert "You are in" not in confirmed.text and "will reach you" not in confirmed.text
    assert "not subscribed" in confirmed.text and status_of(live, reader) == "unsubscribed"


def test_web_view_and_comparison_page(live):
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    assert live.http.get(f"{live.url}/issues/{issue.id}").status_code == 404  # not published yet
    start_send(live.engine, issue.id)
    view = live.http.get(f"{live.url}/issues/{issue.id}")
    assert view.status_code == 200 and "GroqCloud vs Together AI" in view.text
    assert "/unsubscribe/" not in view.text  # no personal tokens in the web view
    page = live.http.get(f"{live.url}/compare/claude-haiku-open-weights-vs-hugging-face-inference-providers-v2")
    assert page.status_code == 200 and "Reviewer scorecard" in page.text and "Thesis" in page.text
    assert live.http.get(f"{live.url}/compare/nope").status_code == 404
    assert live.http.get(f"{live.url}/no/such/page").status_code == 404


def test_two_readers_moving_to_one_address_the_second_confirmation_is_refused(live):
    first, second = add_active(live, "first@example.com"), add_active(live, "second@example.com")
    for reader in (first, second):
        url = f"{live.url}/preferences/{link_token(live.engine, Purpose.preferences, reader)}"
        assert live.http.post(url, data={"action": "change_email", "new_email": "shared@example.com"}).status_code == 200
    assert live.deliver_mail() == 1  # one confirmation per address per interval: the second asks nothing more
    link = live.link_in(live.mails()[-1], "confirm")
    assert live.http.post(link).status_code == 200
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, first).email == "shared@example.com"
        assert session.get(Subscriber, second).email == "second@example.com"
    assert live.http.post(link).status_code == 400  # used


def test_saving_a_topic_keeps_a_running_pause(live):
    """Issue 14.10: the page saves only what the reader changed."""
    reader = add_active(live)
    url = f"{live.url}/preferences/{link_token(live.engine, Purpose.preferences, reader)}"
    assert live.http.post(url, data={"action": "save", "pause_weeks": "4"}).status_code == 200
    with session_scope(live.engine) as session:
        paused = session.get(Subscriber, reader).paused_until
    page = live.http.get(url).text
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.split("</form>")[0]))
    selected = re.search(r'<option value="(\w+)" selected>', page).group(1)
    assert selected == "keep" and "Stay paused until" in page
    # The reader ticks one topic and presses Save: the form as the browser sends it.
    saved = live.http.post(url, data={**form, "topics": ["Developer Tools"], "pause_weeks": selected})
    assert saved.status_code == 200 and "Paused until" in saved.text, re.findall(r"class=\"error\"[^<]*<", saved.text)
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader).paused_until == paused
        topics = session.exec(select(SubscriberTopic.category).where(SubscriberTopic.subscriber_id == reader)).all()
        details = [e.detail for e in session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader)
                                                  .order_by(ConsentEvent.id))]
    assert topics == ["Developer Tools"]
    assert details[-1] == "preferences link; topics=Developer Tools"  # the pause is not in what changed
    # Unticking every topic (all of them) still keeps the pause; "Resume now" ends it.
    live.http.post(url, data={**form, "pause_weeks": "keep"})
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader).paused_until == paused
        assert session.exec(select(SubscriberTopic).where(SubscriberTopic.subscriber_id == reader)).all() == []
    live.http.post(url, data={**form, "pause_weeks": "0"})
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader).paused_until is None


def test_a_preferences_post_with_an_unknown_action_changes_nothing_and_says_so(live):
    reader = add_active(live)
    url = f"{live.url}/preferences/{link_token(live.engine, Purpose.preferences, reader)}"
    bogus = live.http.post(url, data={"action": "bogus", "pause_weeks": "4"})
    assert bogus.status_code == 400 and "Saved." not in bogus.text and "nothing was changed" in bogus.text
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader).paused_until is None
