import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

from newsletter.db import session_scope
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.reports.stats import issue_stats
from newsletter.subscribers.models import Subscriber
from tests.conftest import TEST_SECRET


def send_to_one(live):
    with session_scope(live.engine) as session:
        session.add(Subscriber(email="tracked@example.com", status="active", confirmed_at=datetime.now(UTC)))
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id)
    deliver(live.engine, live.settings, make_transport(live.settings), TEST_SECRET, issue.id)
    eml = next(live.settings.mail.file.dir.glob("i*.eml")).read_bytes()
    return issue, message_from_bytes(eml, policy=policy.default).get_body(("html",)).get_content()


def test_tracking_is_off_by_default(live):
    _issue, html = send_to_one(live)
    assert "/o/" not in html and "/c/" not in html
    assert "https://" in html or "http://" in html


def test_opens_and_clicks_when_enabled_and_no_open_redirect(live_factory, db_url):
    live = live_factory(db_url, TRACKING__OPENS="true", TRACKING__CLICKS="true")
    issue, html = send_to_one(live)
    pixel = re.search(r'<img src="([^"]+/o/[^"]+\.gif)"', html).group(1)
    clicks = re.findall(r'href="([^"]+/c/[^"]+/\d+)"', html)
    assert len(set(clicks)) == 5
    assert live.http.get(pixel).headers["content-type"] == "image/gif"
    live.http.get(pixel)  # a second open of the same reader counts once
    first = sorted(set(clicks))[0]
    answer = live.http.get(first, allow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"{live.url}/compare/")
    token_part = first.rsplit("/", 2)[0]
    assert live.http.get(f"{token_part}/99", allow_redirects=False).status_code == 404
    assert live.http.get(f"{token_part}/-1", allow_redirects=False).status_code == 404
    forged = re.sub(r"/c/[^/]+/", "/c/forged.token.x/", first)
    assert live.http.get(forged, allow_redirects=False).headers["location"] == answer.headers["location"]
    row = issue_stats(live.engine, issue_id=issue.id)[0]
    assert (row.opens, row.clicks) == (1, 1)
