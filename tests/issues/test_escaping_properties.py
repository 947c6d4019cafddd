"""Whatever text the store holds comes out literally in both parts, never as markup or template code
(the editor's note is Markdown; its safety is tests/issues/test_note.py)."""

import html

from markupsafe import escape
from dataclasses import replace

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from newsletter.issues.render import compile_issue
from newsletter.issues.view import ComparisonView, IssueView, QuoteView, SiteView, ToolView

ALPHABET = st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"],
                         include_characters="<>&\"'{}%#$\\/;=", exclude_characters="\u00a0\u2028\u2029")
TEXT = st.text(ALPHABET, min_size=1, max_size=80).map(lambda s: " ".join(s.split())).filter(bool)
VALUES = {"email": "r@example.com", "unsubscribe_url": "https://x.example/u", "preferences_url": "https://x.example/p",
          "vote_token": "v", "track_token": ""}


def tool(name: str, quote: str) -> ToolView:
    return ToolView(name=name, category="Cat", tagline="Tag", description="D", entry_price="Free", panel_ship=50,
                    panel_ship_text="50%", community=None, community_text="—",
                    quote=QuoteView("thesis", "Thesis", "R", "ship", quote))


BASE = IssueView(id=1, week="2026-W48", subject="S", preheader="P", intro="", web_url="https://x.example/issues/1",
                 site=SiteView("Weekly Verdicts", "https://x.example", "Somewhere 1", "en"),
                 comparisons=[ComparisonView(slug="a-vs-b", title="A vs B", dek="Dek", category="Cat",
                                             url="https://x.example/compare/a-vs-b", verdict_line="V",
                                             tools=[tool("A", "qa"), tool("B", "qb")])])


def flat(text: str) -> str:
    return " ".join(text.split())


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=TEXT, dek=TEXT, quote=TEXT, intro=TEXT)
def test_store_text_is_escaped_and_literal(title, dek, quote, intro):
    comparison = replace(BASE.comparisons[0], title=title, dek=dek, tools=[tool("A", quote), tool("B", "qb")])
    compiled = compile_issue(replace(BASE, intro=intro, comparisons=[comparison]))
    page = compiled.html.fill(VALUES)
    text = compiled.text.fill(VALUES)
    visible = flat(html.unescape(page))
    for value in (title, dek, quote):  # the intro is Markdown: tests/issues/test_note.py
        assert flat(value) in visible
        assert flat(value) in flat(text)
        assert str(escape(value)) in page  # in the HTML only in its escaped form
