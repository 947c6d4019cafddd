import time

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.web.abuse import FormTokenError, NotThisVisitor, check_form_token, issue_form_token, network_of
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, Suppression, TransactionalMail
from tests.conftest import TEST_SECRET


def subscriber(live, email):
    with session_scope(live.engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def queued(live, email=None):
    with session_scope(live.engine) as session:
        query = select(TransactionalMail)
        if email:
            query = query.where(TransactionalMail.to_email == email)
        return session.exec(query.order_by(TransactionalMail.id)).all()


def test_signup_form_lists_topics_and_sets_only_the_visitor_cookie(live):
    response = live.http.get(live.url + "/")
    assert response.status_code == 200
    assert 'name="email"' in response.text and 'name="website"' in response.text
    for category in ("Developer Tools", "Design &amp; Media", "Data &amp; Analytics"):
        assert category in response.text
    assert list(response.cookies.keys()) == ["wv_visitor"]  # a random id, nothing personal
    assert "HttpOnly" in response.headers["set-cookie"] and "SameSite=Lax" in response.headers["set-cookie"]


def test_double_opt_in_end_to_end(live):
    response = live.subscribe("New.Reader@Example.com", name="Nia", topics=["Developer Tools"])
    assert response.status_code == 200 and "Check your inbox" in response.text
    reader = subscriber(live, "new.reader@example.com")
    assert reader.status == "pending"
    rows = queued(live)
    assert [(r.kind, r.state, r.token_hash) for r in rows] == [("confirm", "queued", None)]
    assert live.deliver_mail() == 1
    mail = live.mails()[-1]
    assert mail["To"] == "Nia <new.reader@example.com>"
    assert "Confirm your subscription" in mail["Subject"]
    assert mail["List-Unsubscribe"] is None  # transactional, not list mail
    link = live.link_in(mail, "confirm")
    token = link.rsplit("/", 1)[1]
    with session_scope(live.engine) as session:
        stored = session.exec(select(TransactionalMail)).one()
        assert stored.token_hash and token not in stored.token_hash  # only the hash is stored
    page = live.http.get(link)  # a mail scanner's prefetch changes nothing
    assert page.status_code == 200 and "<form method=\"post\"" in page.text
    assert subscriber(live, "new.reader@example.com").status == "pending"
    done = live.http.post(link)
    assert done.status_code == 200 and "You are in" in done.text
    reader = subscriber(live, "new.reader@example.com")
    assert reader.status == "active" and reader.confirmed_at is not None
    with session_scope(live.engine) as session:
        kinds = [e.kind for e in session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader.id))]
        topics = session.exec(select(SubscriberTopic.category).where(SubscriberTopic.subscriber_id == reader.id)).all()
    assert kinds == ["signup_requested", "confirmed"] and topics == ["Developer Tools"]
    assert live.http.post(link).status_code == 400  # single use
    assert live.deliver_mail() == 1 and "Welcome" in live.mails()[-1]["Subject"]


def test_confirmation_links_expire(live):
    live.subscribe("late@example.com")
    live.deliver_mail()
    link = live.link_in(live.mails()[-1], "confirm")
    from datetime import timedelta

    from newsletter.db import utcnow

    live.app.state.web.clock = lambda: utcnow() + timedelta(hours=49)
    assert live.http.get(link).status_code == 400
    assert live.http.post(link).status_code == 400
    assert subscriber(live, "late@example.com").status == "pending"


def test_answers_do_not_reveal_whether_an_address_is_known(live):
    with session_scope(live.engine) as session:
        for email, status in [("active@example.com", "active"), ("pending@example.com", "pending"),
                              ("left@example.com", "unsubscribed"), ("bounced@example.com", "bounced")]:
            session.add(Subscriber(email=email, status=status))
        session.add(Suppression(email="complained@example.com", reason="complaint"))
    answers = {email: live.subscribe(email) for email in
               ["brand-new@example.com", "active@example.com", "pending@example.com", "left@example.com",
                "bounced@example.com", "complained@example.com"]}
    bodies = {(r.status_code, r.text) for r in answers.values()}
    assert len(bodies) == 1
    mailed = {r.to_email for r in queued(live)}
    assert mailed == {"brand-new@example.com", "pending@example.com", "left@example.com"}


def test_unsubscribed_reader_comes_back_through_a_fresh_confirmation(live):
    with session_scope(live.engine) as session:
        session.add(Subscriber(email="back@example.com", status="unsubscribed"))
    live.subscribe("back@example.com")
    assert subscriber(live, "back@example.com").status == "unsubscribed"  # not before confirming
    live.deliver_mail()
    live.http.post(live.link_in(live.mails()[-1], "confirm"))
    assert subscriber(live, "back@example.com").status == "active"


def test_confirmations_to_one_address_are_throttled(live):
    for _ in range(3):
        assert live.subscribe("pester@example.com").status_code == 200
    assert len(queued(live, "pester@example.com")) == 1


def test_honeypot_looks_like_success_and_stores_nothing(live):
    response = live.subscribe("bot@example.com", website="http://spam.example")
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert subscriber(live, "bot@example.com") is None


@pytest.mark.parametrize(
    "fields, status, message",
    [
        ({"email": "not-an-address"}, 422, "email address"),
        ({"email": ""}, 422, "required"),
        ({"email": "ok@example.com", "name": "Evil\r\nBcc: x@y.example"}, 422, "control characters"),
        ({"email": "ok@example.com", "name": "n" * 101}, 422, "onger than 100 characters"),
        ({"email": "x" * 2000 + "@example.com"}, 400, "too long"),
    ],
)
def test_bad_input_gets_the_form_back_with_a_message(live, fields, status, message):
    response = live.http.post(live.url + "/subscribe", data={"form_token": live.form_token(), **fields})
    assert response.status_code == status
    assert message in response.text
    assert '<form method="post"' in response.text
    with session_scope(live.engine) as session:
        assert session.exec(select(Subscriber)).all() == []


def test_form_token_rules(live):
    assert live.http.post(live.url + "/subscribe", data={"email": "a@example.com"}).status_code == 400
    forged = live.http.post(live.url + "/subscribe", data={"email": "a@example.com", "form_token": "x.y.z"})
    assert forged.status_code == 400 and "not valid" in forged.text
    visitor = "v" * 24
    token = issue_form_token(TEST_SECRET, visitor)
    with pytest.raises(FormTokenError, match="quicker"):
        check_form_token(TEST_SECRET, token, visitor, 2, 7200)
    with pytest.raises(FormTokenError, match="expired"):
        check_form_token(TEST_SECRET, token, visitor, 2, 7200, now=time.time() + 7201)
    with pytest.raises(NotThisVisitor):
        check_form_token(TEST_SECRET, token, "w" * 24, 2, 7200, now=time.time() + 3)
    with pytest.raises(NotThisVisitor):
        check_form_token(TEST_SECRET, token, None, 2, 7200, now=time.time() + 3)
    check_form_token(TEST_SECRET, token, visitor, 2, 7200, now=time.time() + 3)


def test_too_fast_a_submission_is_refused(live_factory, db_url):
    live = live_factory(db_url, WEB__FORM_MIN_SECONDS=2)
    response = live.subscribe("quick@example.com")
    assert response.status_code == 400 and "quicker than a person" in response.text


def test_rate_limits_answer_429_with_retry_after(live_factory, db_url):
    live = live_factory(db_url, WEB__SIGNUPS_PER_IP_PER_HOUR=2)
    assert live.subscribe("one@example.com").status_code == 200
    assert live.subscribe("two@example.com").status_code == 200
    third = live.subscribe("three@example.com")
    assert third.status_code == 429 and int(third.headers["Retry-After"]) > 60
    assert subscriber(live, "three@example.com") is None
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"


def test_one_process_deployment_sends_confirmations_in_the_background(live_factory, tmp_path):
    live = live_factory(None, with_sender=True)
    started = time.time()
    assert live.subscribe("bg@example.com").status_code == 200
    assert time.time() - started < 2  # the request did not wait for the mail
    deadline = time.time() + 10
    while not live.mails() and time.time() < deadline:
        time.sleep(0.1)
    assert live.mails() and live.mails()[0]["To"] == "bg@example.com"


def test_a_worker_sends_what_serve_no_sender_queued(live, tmp_path):
    """serve --no-sender leaves confirmations to `newsletter worker`; two senders never double-mail."""
    import threading

    from newsletter.delivery.worker import run_worker

    for n in range(4):
        assert live.subscribe(f"queued{n}@example.com").status_code == 200
    assert live.mails() == []
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=run_worker, kwargs=dict(engine=live.engine, settings=live.settings,
                                                               until_idle=True, stop=stop, echo=lambda _l: None))
               for stop in stops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    mails = live.mails()
    assert sorted(m["To"] for m in mails) == [f"queued{n}@example.com" for n in range(4)]
    with session_scope(live.engine) as session:
        rows = session.exec(select(TransactionalMail)).all()
    assert {r.state for r in rows} == {"sent"} and all(r.attempts == 1 for r in rows)
