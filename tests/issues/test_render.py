import json
import re
import shutil

import pytest

from newsletter.content.importer import import_files
from newsletter.db import session_scope
from newsletter.issues.drafting import draft_issue
from newsletter.mail.compile import compile_email
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from newsletter.templating import TemplateError, render
from tests.test_content import comparison_doc

VALUES = {"email": "reader@example.com", "unsubscribe_url": "https://v.example/u/TOK?a=1&b=2",
          "preferences_url": "https://v.example/p/PREF", "vote_token": "VOTETOKEN"}


def compiled_for(engine, settings, week):
    issue = draft_issue(engine, settings, week).issue
    with session_scope(engine) as session:
        return compile_issue(build_issue_view(session, settings, issue))


@pytest.fixture
def largest_week(sample_engine):
    return "2026-W48"


def test_issue_shows_every_comparison_field(sample_engine, settings, largest_week):
    compiled = compiled_for(sample_engine, settings, largest_week)
    html = compiled.html.fill(VALUES, lambda v: v.replace("&", "&amp;"))
    text = compiled.text.fill(VALUES)
    for needle in ["Claude Haiku Open Weights vs Hugging Face Inference Providers v2",
                   "Hugging Face Inference Providers v2", "Panel ship", "50%", "100%", "Community",
                   "—", "Entry price", "Free", "Read the full verdict",
                   "https://verdicts.example/compare/claude-haiku-open-weights-vs-hugging-face-inference-providers-v2",
                   "17 Sample Lane", "Unsubscribe", "preferences"]:
        assert needle in html, needle
        assert needle in text, needle
    assert "https://v.example/u/TOK?a=1&amp;b=2" in html  # slot values are HTML-escaped
    assert "https://v.example/u/TOK?a=1&b=2" in text
    assert "reader@example.com" in html and "reader@example.com" in text
    assert '<html lang="en" dir="ltr"' in html
    assert "fonts.googleapis" not in html


def test_largest_sample_issue_stays_under_gmail_clip(sample_engine, settings, largest_week):
    compiled = compiled_for(sample_engine, settings, largest_week)
    html = compiled.html.fill(VALUES)
    assert html.count("Read the full verdict") >= 5
    assert len(html.encode("utf-8")) < 100 * 1024


def test_plain_text_is_wrapped_and_links_written_out(sample_engine, settings, largest_week):
    text = compiled_for(sample_engine, settings, largest_week).text.fill(VALUES)
    for line in text.splitlines():
        assert len(line) <= 78 or re.fullmatch(r"\s*\S+", line), line  # only unbreakable URLs run long
    assert "Unsubscribe from Weekly Verdicts:\nhttps://v.example/u/TOK?a=1&b=2" in text
    assert "<" not in text.replace("<-", "")


def test_store_content_comes_out_literally(engine, settings, tmp_path):
    doc = comparison_doc("evil", published="2026-11-25T10:00:00Z")
    doc["dek"] = "Tricky: <script>alert(1)</script> {{ x }} {% raw %} 100% & more"
    doc["reviews"][0]["quote"] = "Quote with {{ config }} and 50% and <b>bold</b>."
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(doc))
    import_files(engine, [path])
    compiled = compiled_for(engine, settings, "2026-W48")
    html, text = compiled.html.fill(VALUES), compiled.text.fill(VALUES)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ x }} {% raw %} 100% &amp; more" in html
    assert "Tricky: <script>alert(1)</script> {{ x }} {% raw %} 100% & more" in text
    assert "{{ config }} and 50% and &lt;b&gt;bold&lt;/b&gt;" in html


def test_template_mistakes_name_the_template_and_line(tmp_path, monkeypatch):
    import newsletter.templating as templating

    folder = tmp_path / "templates"
    shutil.copytree(templating.TEMPLATES, folder)
    (folder / "email" / "broken.mjml.j2").write_text("<mjml>\n<mj-body>\n{{ no_such_value }}\n</mj-body></mjml>\n")
    (folder / "email" / "syntax.txt.j2").write_text("line one\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"broken\.mjml\.j2, line 3: 'no_such_value' is undefined"):
        render("email/broken.mjml.j2", {}, folder)
    with pytest.raises(TemplateError, match=r"syntax\.txt\.j2, line 2"):
        render("email/syntax.txt.j2", {}, folder)


def test_a_missing_variable_fails_at_compile_not_at_send(sample_engine, settings):
    with pytest.raises(TemplateError, match="issue.mjml.j2"):
        compile_email("issue", "S", lambda slot: {"site": None}, render)


def test_per_recipient_messages_need_no_template_or_mjml_work(sample_engine, settings, monkeypatch):
    """Once the issue is compiled, building messages must not touch Jinja or MJML again."""
    from datetime import UTC, datetime

    import newsletter.mail.compile as compile_module
    import newsletter.templating as templating
    from newsletter.issues.links import IssueRecipient, issue_message
    from newsletter.mail.compose import build_template
    from tests.conftest import TEST_SECRET

    compiled = compiled_for(sample_engine, settings, "2026-W48")
    template = build_template(settings, compiled)

    def tripwire(*_args, **_kwargs):
        raise AssertionError("per-recipient path rendered a template or compiled MJML")

    monkeypatch.setattr(compile_module, "mjml2html", tripwire)
    monkeypatch.setattr(templating.jinja2.Template, "render", tripwire)
    now = datetime.now(UTC)
    bodies = set()
    for n in range(200):
        message, _ = issue_message(settings, TEST_SECRET, template, IssueRecipient(f"r{n}@example.com", "", n, f"i1-d{n}"), now)
        bodies.add(message.data)
    assert len(bodies) == 200  # every copy is personal (address, links, Message-ID)
