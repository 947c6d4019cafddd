"""Every mail the project sends and every page it serves, produced the way a reader meets them.

A live uvicorn server on a free port, a file transport, a reader who signs up, confirms, saves
preferences and asks for an address change through HTTP, and a second who votes and unsubscribes; the editors' issue,
test send and finished notice go through the same code as the CLI. The result is the real
.eml bytes of each kind of mail and the URL (GET pages) or the HTML (POST answers, one-time
pages) of each kind of page, so the accessibility and spam checks judge what a reader would get.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from newsletter.config import load_settings
from newsletter.db import make_engine
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.editors.audit import Actor
from newsletter.workflow.sending import test_send
from newsletter.migrate import upgrade
from tests.conftest import TEST_SECRET, write_config
from tests.fakes.smtp_server import free_port
from tests.web.conftest import Live, start_live

WEEK = "2026-W48"
READER = "jane.reader@example.com"
LEAVER = "sam.leaver@example.com"
EDITOR = "editor@example.com"


@dataclass
class Corpus:
    live: Live
    mails: dict[str, Path] = field(default_factory=dict)  # kind -> .eml file
    pages: dict[str, str] = field(default_factory=dict)  # name -> URL to GET
    # name -> HTML of a POST answer, or of a page whose link works once (kept when first seen)
    answers: dict[str, str] = field(default_factory=dict)

    def message(self, kind: str) -> EmailMessage:
        return message_from_bytes(self.mails[kind].read_bytes(), policy=policy.default)

    def html_of(self, kind: str) -> str:
        part = self.message(kind).get_body(("html",))
        return part.get_content() if part is not None else ""


def _link(mail: EmailMessage, path: str) -> str:
    text = mail.get_body(("plain",)).get_content()
    return re.search(rf"(https?://\S+/{path}/\S+)", text).group(1)


def _newest(folder: Path, before: set[Path], pattern: str = "*.eml") -> Path:
    new = sorted(set(folder.glob(pattern)) - before)
    assert len(new) == 1, f"expected one new mail, got {[p.name for p in new]}"
    return new[0]


class _Recorder:
    """Notes each new .eml in the outbox under the kind of mail that made it."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus, self.folder = corpus, corpus.live.settings.mail.file.dir
        self.seen: set[Path] = set()

    def take(self, kind: str | None, pattern: str = "*.eml") -> EmailMessage:
        path = _newest(self.folder, self.seen, pattern)
        self.seen.add(path)
        if kind:
            self.corpus.mails[kind] = path
        return message_from_bytes(path.read_bytes(), policy=policy.default)

    def expect(self, kind: str | None) -> EmailMessage:
        self.corpus.live.deliver_mail()
        return self.take(kind)


def _post(corpus: Corpus, name: str, url: str, data: dict) -> None:
    answer = corpus.live.http.post(url, data=data, allow_redirects=False)
    assert answer.status_code < 500, (name, answer.status_code)
    corpus.answers[name] = answer.text


def _join(corpus: Corpus, record: _Recorder, email: str, name: str, kinds: tuple) -> EmailMessage:
    """Sign up and confirm through the site; returns the welcome mail."""
    answer = corpus.live.subscribe(email, name=name)
    assert answer.status_code == 200, answer.text
    corpus.answers.setdefault("check_inbox", answer.text)
    confirm_url = _link(record.expect(kinds[0]), "confirm")
    # The confirm page as the reader first sees it (its link works once, so it is kept now).
    corpus.answers.setdefault("confirm_signup", corpus.live.http.get(confirm_url).text)
    _post(corpus, "confirmed", confirm_url, {})
    return record.expect(kinds[1])


def _reader_journey(corpus: Corpus, record: _Recorder) -> None:
    live, base = corpus.live, corpus.live.url
    corpus.pages.update(signup=base + "/", embed=base + "/embed", not_found=base + "/no-such-page",
                        invalid_link=base + "/unsubscribe/not-a-token")
    _post(corpus, "signup_errors", base + "/subscribe",
          {"form_token": live.form_token(), "email": "not an address", "name": "Jane"})
    preferences_url = _link(_join(corpus, record, READER, "Jane Reader", ("confirmation", "welcome")),
                            "preferences")
    corpus.pages["preferences"] = preferences_url
    _post(corpus, "preferences_saved", preferences_url, {"action": "save", "pause_weeks": "0"})
    _post(corpus, "preferences_error", preferences_url, {"action": "change_email", "new_email": "nope"})
    _post(corpus, "address_change_sent", preferences_url,
          {"action": "change_email", "new_email": "jane.new@example.com"})
    corpus.pages["confirm"] = _link(record.expect("confirm_change"), "confirm")  # left pending
    _join(corpus, record, LEAVER, "Sam Leaver", (None, None))


def _issue_journey(corpus: Corpus, record: _Recorder) -> None:
    live, base = corpus.live, corpus.live.url
    issue = draft_issue(live.engine, live.settings, WEEK).issue
    start_send(live.engine, issue.id)
    transport = make_transport(live.settings)
    try:
        deliver(live.engine, live.settings, transport, TEST_SECRET, issue.id)
    finally:
        transport.close()
    # The worker that finishes the issue also mails the editors' notice ([schedule] notify).
    record.take("notice", "notice-*.eml")
    by_reader = {}
    for path in sorted(set(record.folder.glob("i*-d*.eml")) - record.seen):
        record.seen.add(path)
        by_reader[message_from_bytes(path.read_bytes(), policy=policy.default)["To"].addresses[0].addr_spec] = path
    assert set(by_reader) == {READER, LEAVER}, by_reader
    corpus.mails["issue"] = by_reader[READER]
    jane = corpus.message("issue")
    sam = message_from_bytes(by_reader[LEAVER].read_bytes(), policy=policy.default)
    corpus.pages.update(vote=_link(jane, "vote"), web_view=f"{base}/issues/{issue.id}",
                        comparison=f"{base}/compare/groqcloud-vs-together-ai", tool=f"{base}/tools/groqcloud",
                        unsubscribe=_link(jane, "unsubscribe"),
                        archive=f"{base}/issues")
    _post(corpus, "vote_recorded", _link(sam, "vote"), {})
    _post(corpus, "unsubscribed", _link(sam, "unsubscribe"), {"source": "page"})
    record.expect("goodbye")
    test_send(live.engine, live.settings, TEST_SECRET, Actor.cli(), issue.id, [EDITOR])
    record.take("test_send")


def _console_journey(corpus: Corpus) -> None:
    """The editors' console: login page, set-password page, a failed login, the signed-in pages."""
    from newsletter.db import session_scope
    from newsletter.editors import accounts, audit

    live = corpus.live
    with session_scope(live.engine) as session:
        accounts.add_editor(session, "owner@editors.example", "owner", audit.Actor.cli(), "a long passphrase here")
        invited = accounts.add_editor(session, "invited@editors.example", "viewer", audit.Actor.cli())
        audit.record(session, audit.Actor.cli(), "comparison.put", "comparison:sample",  # an edit, shown as a diff
                     {"title": "Old title", "tools": ["a", "b"]}, {"title": "New title", "tools": ["b", "a"]})
        corpus.pages["admin_set_password"] = \
            f"{live.url}/admin/set-password/{accounts.set_password_token(TEST_SECRET, invited)}"
    corpus.pages["admin_login"] = live.url + "/admin/login"
    browser = requests.Session()
    form = {"email": "owner@editors.example", "password": "not the passphrase",
            "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', browser.get(corpus.pages["admin_login"]).text)
            .group(1)}
    corpus.answers["admin_login_error"] = browser.post(live.url + "/admin/login", data=form).text
    assert browser.post(live.url + "/admin/login", data={**form, "password": "a long passphrase here"}).ok
    _owners_journey(corpus, browser)
    from sqlalchemy import func, select

    from newsletter.issues.models import Issue

    with session_scope(live.engine) as session:
        sent = session.execute(select(func.max(Issue.id)).where(Issue.started_at.is_not(None))).scalar_one()
    for name, path in (("admin_dashboard", "/admin"), ("admin_audit", "/admin/audit"),
                       ("admin_editors", "/admin/editors"), ("admin_settings", "/admin/settings"),
                       ("admin_webhooks", "/admin/webhooks"), ("admin_stats", "/admin/stats"),
                       ("admin_stats_issue", f"/admin/stats/issues/{sent}"),
                       ("admin_stats_comparisons", "/admin/stats/comparisons")):
        corpus.answers[name] = browser.get(live.url + path).text
    _reader_pages(corpus, browser)
    _console_issue_pages(corpus, browser)
    _import_journey(corpus, browser)


def _reader_pages(corpus: Corpus, browser: requests.Session) -> None:
    """The readers' pages as an owner sees them: a search, the leaver's record (a delivered
    issue, a vote, an unsubscribe), the forget confirmation, the suppression list."""
    from sqlalchemy import select

    from newsletter.db import session_scope
    from newsletter.subscribers.models import Subscriber, Suppression

    live = corpus.live
    with session_scope(live.engine) as session:
        session.add(Suppression(email="bounced.reader@example.com", reason="hard_bounce"))
        leaver = session.execute(select(Subscriber.id).where(Subscriber.email == LEAVER)).scalar_one()
    for name, path in (("admin_readers", "/admin/readers?q=sam"), ("admin_reader", f"/admin/readers/{leaver}"),
                       ("admin_reader_forget", f"/admin/readers/{leaver}/forget"),
                       ("admin_suppressions", "/admin/suppressions")):
        corpus.answers[name] = browser.get(live.url + path).text


def _owners_journey(corpus: Corpus, browser: requests.Session) -> None:
    """An owner's forms: the one-time pages (link, token, secret), a refusal, a webhook delivery."""
    from newsletter.db import session_scope
    from newsletter.editors import accounts, audit, totp
    from newsletter.outgoing import emit

    live = corpus.live
    with session_scope(live.engine) as session:
        totp.enable(session, accounts.find(session, "invited@editors.example"), "WV", audit.Actor.cli())

    def post(path: str, data: dict) -> str:
        page = browser.get(live.url + ("/admin/webhooks" if "webhooks" in path else "/admin/editors")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return browser.post(live.url + path, data={**data, "csrf_token": token}).text

    corpus.answers["admin_editor_added"] = post("/admin/editors/add", {"email": "new@editors.example",
                                                                       "role": "reviewer"})
    corpus.answers["admin_token_created"] = post("/admin/tokens", {"name": "site cms", "scopes": ["read", "all"]})
    corpus.answers["admin_last_owner"] = post("/admin/editors/remove", {"email": "owner@editors.example"})
    corpus.answers["admin_webhook_created"] = post("/admin/webhooks", {
        "url": "https://hooks.invalid/in", "events": ["reader.confirmed", "issue.finished"], "description": "CRM"})
    corpus.answers["admin_webhook_refused"] = post("/admin/webhooks", {"url": "http://hooks.invalid/in",
                                                                       "events": ["vote.recorded"]})
    with session_scope(live.engine) as session:
        emit(session, "reader.confirmed", {"email": "jane@example.com"})


def _console_issue_pages(corpus: Corpus, browser: requests.Session) -> None:
    """The issue list, an editable draft's page (every form) and the sent issue's progress page."""
    from newsletter.issues.drafting import issue_for_week

    live = corpus.live
    draft = draft_issue(live.engine, live.settings, "2026-W47").issue
    sent = issue_for_week(live.engine, WEEK)
    for name, path in (("admin_issues", "/admin/issues"), ("admin_issue", f"/admin/issues/{draft.id}"),
                       ("admin_issue_send", f"/admin/issues/{draft.id}/send"),
                       ("admin_issue_progress", f"/admin/issues/{sent.id}/progress")):
        corpus.answers[name] = browser.get(live.url + path).text
    _comparisons_journey(corpus, browser)
    _followup_journey(corpus, browser, sent.id)


def _followup_journey(corpus: Corpus, browser: requests.Session, issue_id: int) -> None:
    """The sent issue's verdict turns; the owner drafts a follow-up, previews, confirms and sends
    it; the one reader still subscribed gets the follow-up mail."""
    from newsletter.delivery.followup_sender import deliver_all
    from tests.delivery.test_followups import _flip_verdict

    from newsletter.db import session_scope
    from newsletter.issues.frozen import issue_view
    from newsletter.issues.models import Issue

    live = corpus.live
    with session_scope(live.engine) as session:
        slug = issue_view(session, live.settings, session.get(Issue, issue_id)).comparisons[0].slug
    _flip_verdict(live.engine, issue_id)
    corpus.answers["admin_followups"] = browser.get(live.url + "/admin/followups").text
    corpus.answers["admin_followup_new"] = form = browser.get(f"{live.url}/admin/followups/new?comparison={slug}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    created = browser.post(live.url + "/admin/followups", allow_redirects=False,
                           data={"csrf_token": token, "comparison": slug, "subject": "The verdict on GroqCloud moved",
                                 "note": "We ran the *whole* panel again."})
    assert created.status_code == 303, created.text
    page = live.url + created.headers["location"].split("?")[0]
    corpus.answers["admin_followup"] = browser.get(page).text
    corpus.answers["admin_followup_send"] = browser.get(page + "/send").text
    assert browser.post(page + "/send", data={"csrf_token": token}, allow_redirects=False).status_code == 303
    transport = make_transport(live.settings)
    try:
        assert deliver_all(live.engine, live.settings, transport, TEST_SECRET).sent == 1  # the leaver left
    finally:
        transport.close()
    _Recorder(corpus).take("followup", "f*-d*.eml")


def _comparisons_journey(corpus: Corpus, browser: requests.Session) -> None:
    """The comparisons list, the edit form, and the form sent back with errors next to fields."""
    edit = corpus.live.url + "/admin/comparisons/groqcloud-vs-together-ai"
    corpus.answers["admin_comparisons"] = browser.get(corpus.live.url + "/admin/comparisons").text
    corpus.answers["admin_comparison_form"] = form = browser.get(edit).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = browser.post(edit, data={"csrf_token": token, "title": "", "published": "soon",
                                      "tools-0-slug": "Not A Slug", "tools-2-name": "Half a tool"})
    assert answer.status_code == 422, answer.status_code
    corpus.answers["admin_comparison_errors"] = answer.text
    corpus.answers["admin_comparison_history"] = browser.get(edit + "/history").text


def _import_journey(corpus: Corpus, browser: requests.Session) -> None:
    """The readers import: upload page, a refused file, the mapping step, a running job, a dry run's summary."""
    from sqlalchemy import update

    from newsletter.db import session_scope, utcnow
    from newsletter.subscribers.import_jobs import ImportJob
    from newsletter.subscribers.import_runner import run_next
    from newsletter.web.console.import_pages import record_job_end
    from tests.subscribers.import_helpers import DATA

    live, form = corpus.live, corpus.live.url + "/admin/readers/import"
    corpus.answers["admin_import"] = upload_page = browser.get(form).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', upload_page).group(1)

    def send(name: str, data: bytes):
        return browser.post(form, data={"csrf_token": token, "platform": "auto"}, files={"file": (name, data)},
                            allow_redirects=False)

    corpus.answers["admin_import_error"] = send("sheet.xlsx", b"PK\x03\x04" + b"\x00" * 20).text
    mapping_url = live.url + send("buttondown.csv", (DATA / "buttondown.csv").read_bytes()).headers["location"]
    corpus.answers["admin_import_mapping"] = step = browser.get(mapping_url).text
    fields = dict(re.findall(r'<select id="(column_\d+)".*?<option value="([^"]+)" selected>', step, re.S))
    assert browser.post(mapping_url + "/dry-run", data={"csrf_token": token, **fields}, allow_redirects=False).ok
    job_id = int(mapping_url.rsplit("/", 1)[1])
    with session_scope(live.engine) as session:  # as a runner elsewhere would show it, half way through
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            state="running", worker="elsewhere", heartbeat_at=utcnow(), total_rows=7, processed=3))
    corpus.answers["admin_import_progress"] = browser.get(mapping_url).text
    with session_scope(live.engine) as session:
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(state="queued", processed=0))
    run_next(live.engine, live.app.state.web.categories, on_finish=record_job_end)
    corpus.answers["admin_import_summary"] = browser.get(mapping_url).text


def build_corpus(tmp: Path) -> tuple[Corpus, object]:
    """Start the site and walk every path that sends a mail or shows a page. Returns the corpus
    and the server, which the caller stops."""
    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NEWSLETTER_SECRET_KEY", TEST_SECRET)
        env.setenv("NEWSLETTER_SITE__BASE_URL", f"http://127.0.0.1:{port}")
        env.setenv("NEWSLETTER_WEB__FORM_MIN_SECONDS", "0")
        env.setenv("NEWSLETTER_SCHEDULE__NOTIFY", f'["{EDITOR}"]')
        env.setenv("NEWSLETTER_MAIL__UNSUBSCRIBE_MAILBOX", "unsubscribe@weeklyverdicts.example")
        settings = load_settings(write_config(tmp))
    engine = make_engine(settings.database.url)
    upgrade(engine)
    from newsletter.content.importer import import_files, sample_files

    import_files(engine, sample_files())
    app, server, thread = start_live(settings, engine)
    corpus = Corpus(Live(settings.site.base_url, settings, engine, app, requests.Session()))
    record = _Recorder(corpus)
    _reader_journey(corpus, record)
    _issue_journey(corpus, record)
    _console_journey(corpus)
    return corpus, (server, thread, engine)
