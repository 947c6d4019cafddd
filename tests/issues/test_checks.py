"""Pre-send checks (issue 14.9), from the outside: `newsletter issue check`, `issue send`,
`issue schedule` and the scheduler, on a real store with content dated relative to today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from sqlmodel import func, select

from newsletter.config import load_settings
from newsletter.content.importer import import_files
from newsletter.db import make_engine, session_scope
from newsletter.delivery.models import Delivery
from newsletter.issues import editing
from newsletter.issues.checks import MAX_HTML_BYTES, ChecksFailed, html_links, link_problem, render_for_checks, \
    sample_postal_address
from newsletter.issues.fit import BUDGET_BYTES
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.schedule import dispatch_due
from newsletter.weeks import week_of
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import write_config
from tests.content_files import comparison, text, write_content
from tests.cli.test_cli import run
from tests.db_templates import migrate_fresh

ENV = {"NEWSLETTER_SECRET_KEY": "k" * 40}
NOW = datetime.now(UTC)


def store(tmp_path, comparisons: list[dict], extra: str = "", readers: int = 2, db_url: str | None = None):
    """A migrated store holding `comparisons` and `readers` active readers; returns settings, engine."""
    settings = load_settings(write_config(tmp_path, db_url, extra=extra))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    import_files(engine, [write_content(tmp_path / "content.json", comparisons)])
    with session_scope(engine) as session:
        for n in range(readers):
            upsert_active(session, f"reader{n}@example.com", "", [], "import", UpsertResult())
    return settings, engine


def this_week(tmp_path, extra: str = "", **kwargs):
    """A store whose issue 1 is this week's, with one comparison published today."""
    settings, engine = store(tmp_path, [comparison("fresh-pick", NOW, **kwargs)], extra)
    issue = draft_issue(engine, settings, week_of(NOW, settings.site.zone)).issue
    return settings, engine, issue


def lines(output: str) -> dict[str, str]:
    """`issue check` output: check name -> level."""
    return {line.split()[1]: line.split()[0] for line in output.splitlines() if line.split()}


def test_a_clean_issue_passes_with_the_sample_address_as_a_warning_on_the_file_transport(tmp_path):
    this_week(tmp_path)
    result = run(["issue", "check", "1"], tmp_path, ENV, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result.stdout) == {"size": "ok", "https": "ok", "postal-address": "warning", "week": "ok",
                                    "links": "ok", "dkim": "ok", "stale": "ok"}
    assert "sample from the shipped config.toml" in result.stdout


def test_real_transport_with_http_base_url_and_sample_address_fails_and_send_refuses(tmp_path):
    this_week(tmp_path)
    env = {**ENV, "NEWSLETTER_MAIL__TRANSPORT": "smtp", "NEWSLETTER_SITE__BASE_URL": "http://127.0.0.1:8000"}
    result = run(["issue", "check", "1"], tmp_path, env, check=False)
    assert result.returncode == 1
    assert lines(result.stdout) == {"size": "ok", "https": "fail", "postal-address": "fail", "week": "ok",
                                    "links": "ok", "dkim": "warning", "stale": "ok"}
    refused = run(["issue", "send", "1"], tmp_path, env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "https: [site] base_url is http://127.0.0.1:8000" in refused.stderr
    assert "postal-address:" in refused.stderr and "--ignore-checks" in refused.stderr
    assert "): draft" in run(["issue", "show", "1"], tmp_path, env).stdout  # nothing enqueued
    scheduled = run(["issue", "schedule", "1", "--at", (NOW + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")],
                    tmp_path, env, check=False)
    assert scheduled.returncode == 1 and "https:" in scheduled.stderr


def test_a_warning_alone_does_not_block_and_a_real_address_clears_it(tmp_path):
    this_week(tmp_path)
    env = {**ENV, "NEWSLETTER_SITE__POSTAL_ADDRESS": "Verdicts GmbH, Torstrasse 1, 10119 Berlin"}
    result = run(["issue", "check", "1"], tmp_path, env)
    assert set(lines(result.stdout).values()) == {"ok"}
    assert "sending to 2 subscribers" in run(["issue", "send", "1", "--wait"], tmp_path, env).stdout


def test_an_old_week_fails_and_ignore_checks_sends_anyway_saying_so(tmp_path):
    settings, engine = store(tmp_path, [comparison("old-pick", NOW - timedelta(days=21))])
    week = week_of(NOW - timedelta(days=21), settings.site.zone)
    draft_issue(engine, settings, week)
    result = run(["issue", "check", "1"], tmp_path, ENV, check=False)
    assert result.returncode == 1 and lines(result.stdout)["week"] == "fail"
    assert f"the issue is for {week}, 3 weeks before" in result.stdout
    assert run(["issue", "send", "1"], tmp_path, ENV, check=False).returncode == 1
    sent = run(["issue", "send", "1", "--ignore-checks", "--wait"], tmp_path, ENV)
    assert "sending to 2 subscribers" in sent.stdout and "going ahead although 1 check(s) fail" in sent.stderr


def test_last_weeks_issue_is_not_too_old(tmp_path):
    settings, engine = store(tmp_path, [comparison("last-week", NOW - timedelta(days=7))])
    draft_issue(engine, settings, week_of(NOW - timedelta(days=7), settings.site.zone))
    assert lines(run(["issue", "check", "1"], tmp_path, ENV).stdout)["week"] == "ok"


def test_malformed_links_in_the_text_part_and_from_the_base_url_fail(tmp_path):
    this_week(tmp_path, quote="Docs live at htps://docs.example/start and at http://exa mple.")
    result = run(["issue", "check", "1"], tmp_path, ENV, check=False)
    assert result.returncode == 1 and lines(result.stdout)["links"] == "fail"
    assert "'htps://docs.example/start': scheme 'htps' is not http, https or mailto" in result.stdout
    hostless = run(["issue", "check", "1"], tmp_path, {**ENV, "NEWSLETTER_SITE__BASE_URL": "https://"}, check=False)
    assert "no host" in hostless.stdout and lines(hostless.stdout)["links"] == "fail"


@pytest.mark.parametrize("url, problem", [
    ("https://verdicts.example/compare/a-vs-b", None),
    ("mailto:editor@verdicts.example", None),
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("https://verdicts.example/a b", "contains a space"),
    ("https:///path-only", "no host"),
    ("//verdicts.example/x", "scheme '(none)'"),
    ("https://verdicts.example:99999/", "does not parse"),
    ("mailto:", "mailto: without an address"),
    ("", "empty link"),
    ("#c9", "leads to no element of the mail"),
])
def test_link_rules(url, problem):
    found = link_problem(url)
    assert (found is None) if problem is None else (problem in found)


def test_an_in_mail_link_is_checked_against_the_mails_ids():
    """"In this issue" links to the cards' headings: fine while they exist, a failure when not."""
    assert html_links('<h2 id="c1">A</h2><a href="#c1">A</a><a href="#c9">gone</a>') == ["#c9"]


def test_an_issue_over_the_size_limit_fails(tmp_path):
    picks = [comparison(f"pick-{n}", NOW, tools=4, longest=True) for n in range(12)]
    settings, engine = store(tmp_path, picks, extra="\n[issue]\nmax_comparisons = 12\n")
    draft_issue(engine, settings, week_of(NOW, settings.site.zone))
    result = run(["issue", "check", "1"], tmp_path, ENV, check=False)
    assert result.returncode == 1 and lines(result.stdout)["size"] == "fail"
    assert "Gmail clips it" in result.stdout


def largest_issue(tmp_path, tools: int):
    """[issue] max_comparisons comparisons of `tools` tools, every field at the import schema's
    maximum length, the longest editor's note, subject and preheader; rendered for the longest reader."""
    count = load_settings(write_config(tmp_path)).issue.max_comparisons
    settings, engine = store(tmp_path, [comparison(f"pick-{n}", NOW, tools=tools, longest=True) for n in range(count)])
    issue = draft_issue(engine, settings, week_of(NOW, settings.site.zone)).issue
    editing.edit(engine, issue.id, subject=text(200), preheader=text(200), intro="\n\n".join([text(1248)] * 4))
    rendered = render_for_checks(engine, settings, issue.id)
    engine.dispose()
    return count, rendered


def test_the_largest_possible_issue_stays_well_under_the_limit(tmp_path):
    """Four tools per comparison (the schema's most) and every field at its longest."""
    count, rendered = largest_issue(tmp_path, tools=4)
    size = len(rendered.html.encode("utf-8"))
    assert size < 0.9 * MAX_HTML_BYTES, f"{size} bytes"
    assert rendered.html.count("Read the full verdict") == count  # every comparison is there, in excerpts
    assert "/unsubscribe/" in rendered.html[-3000:]  # the footer is in, not clipped


def test_six_head_to_head_comparisons_at_the_longest_stay_well_under_the_limit(tmp_path):
    """The usual "A vs B" comparisons, every field at its longest: the 148 KB issue of issue 14."""
    _count, rendered = largest_issue(tmp_path, tools=2)
    size = len(rendered.html.encode("utf-8"))
    assert size <= BUDGET_BYTES < 0.9 * MAX_HTML_BYTES, f"{size} bytes"
    assert "…" in rendered.html  # the email carries excerpts; the web page has the whole text


def test_the_scheduler_holds_a_failing_issue_and_tells_the_editors(tmp_path, db_url):
    extra = '\n[schedule]\nnotify = ["editor@example.com"]\n'
    published = NOW - timedelta(days=30)
    settings, engine = store(tmp_path, [comparison("stale-pick", published)], extra=extra, db_url=db_url)
    issue = draft_issue(engine, settings, week_of(published, settings.site.zone)).issue
    when = NOW + timedelta(minutes=5)
    editing.schedule(engine, issue.id, when, now=NOW)
    assert dispatch_due(engine, settings, now=when + timedelta(seconds=1)) == []
    with session_scope(engine) as session:
        held = session.get(Issue, issue.id)
        assert (held.state, held.scheduled_at) == ("draft", None)
        assert session.exec(select(func.count()).select_from(Delivery)).one() == 0
    notices = list(settings.mail.file.dir.glob("notice-*.eml"))
    assert len(notices) == 1
    notice = message_from_bytes(notices[0].read_bytes(), policy=policy.default)
    assert notice["Subject"] == f"Issue {issue.id} ({issue.week}) was not sent: pre-send checks fail"
    assert "week: the issue is for" in notice.get_content()
    assert dispatch_due(engine, settings, now=when + timedelta(seconds=30)) == []  # no second notice
    assert len(list(settings.mail.file.dir.glob("notice-*.eml"))) == 1
    engine.dispose()


def test_the_scheduler_lets_pass_the_checks_an_editor_overrode_when_scheduling_and_no_other(tmp_path, db_url):
    """`issue schedule --ignore-checks` (the console's and the API's ignore_checks too) scheduled an
    issue whose week check failed; at the send time the scheduler ran the checks again and put it
    back to draft for the very failure the editor had accepted. The override is kept with the
    schedule: exactly those checks pass, and a check that fails only later still holds the issue."""
    from newsletter.editors.audit import Actor
    from newsletter.schedule import zone_of
    from newsletter.workflow import sending

    published = NOW - timedelta(days=30)
    settings, engine = store(tmp_path, [comparison("stale-pick", published)], db_url=db_url)
    issue = draft_issue(engine, settings, week_of(published, settings.site.zone)).issue
    when = (NOW + timedelta(minutes=5)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    local = when.astimezone(zone_of(settings)).strftime("%Y-%m-%d %H:%M")
    with pytest.raises(ChecksFailed):
        sending.schedule(engine, settings, Actor.cli(), issue.id, local)
    sending.schedule(engine, settings, Actor.cli(), issue.id, local, ignore_checks=True)
    with session_scope(engine) as session:
        assert session.get(Issue, issue.id).scheduled_ignoring == "week"
    assert editing.describe(engine, settings, issue.id)["ignoring"] == "week"  # what `issue show` prints
    # The dashboard's attention list: the overridden failure is a warning that says it goes out anyway.
    from newsletter.reports.attention import needs_attention

    week_items = [item for item in needs_attention(engine, settings, (issue.id, issue.week), NOW)
                  if "check week" in item.message]
    assert [item.kind for item in week_items] == ["check_warning"] and "overridden" in week_items[0].message
    # Failures the editor did not see: the site now mails real inboxes with the sample postal address.
    sample = settings.model_copy(update={
        "site": settings.site.model_copy(update={"postal_address": sample_postal_address()}),
        "mail": settings.mail.model_copy(update={"transport": "smtp"})})
    assert dispatch_due(engine, sample, now=when + timedelta(seconds=1)) == []
    with session_scope(engine) as session:
        held = session.get(Issue, issue.id)
        assert (held.state, held.scheduled_ignoring) == ("draft", "")  # back to draft: the override goes too
    sending.schedule(engine, settings, Actor.cli(), issue.id, local, ignore_checks=True)
    assert dispatch_due(engine, settings, now=when + timedelta(seconds=1)) == [issue.id]
    with session_scope(engine) as session:
        assert session.get(Issue, issue.id).state == "sending"
        assert session.exec(select(func.count()).select_from(Delivery)).one() == 2
    engine.dispose()
