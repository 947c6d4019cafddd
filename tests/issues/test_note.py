"""The editor's note is Markdown: emphasis and http(s)/mailto links come through in both parts;
raw HTML, scripts and javascript:/data: links never become markup or links, whatever the note."""

import html
from dataclasses import replace
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from newsletter.issues.checks import link_problem, text_links
from newsletter.issues.note import note_html, note_problem, note_text
from newsletter.issues.render import compile_issue
from tests.issues.test_escaping_properties import BASE, VALUES

ALLOWED_TAGS = {"p", "em", "strong", "a", "br"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(fragment: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    return parser.tags


def test_emphasis_and_links_in_both_parts():
    note = "We *loved* **this** week: read [the verdict](https://verdicts.example/compare/a) or [write](mailto:ed@verdicts.example)."
    rendered = note_html(note)
    assert "<em>loved</em>" in rendered and "<strong>this</strong>" in rendered
    assert 'href="https://verdicts.example/compare/a"' in rendered and 'href="mailto:ed@verdicts.example"' in rendered
    text = note_text(note)
    assert "*loved*" in text and "the verdict <https://verdicts.example/compare/a>" in text
    assert "write <mailto:ed@verdicts.example>" in text


def test_raw_html_and_unsafe_links_stay_text():
    note = ('<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) '
            '[y](JaVaScRiPt:alert(2)) [z](data:text/html;base64,PHNjcmlwdD4=) [r](/relative) <javascript:alert(3)>')
    rendered = note_html(note)
    assert tags(rendered) == [("p", {"style": "margin:0 0 12px;"})]
    assert "<script" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;" in rendered  # shown as the text the editor typed
    assert not text_links(note_text(note))


MARKDOWNISH = st.sampled_from(["*", "**", "_", "[", "]", "(", ")", "<", ">", "javascript:", "JAVASCRIPT:", "data:",
                               "vbscript:", "https://a.example/", "mailto:", "@", "<script>", "</script>", "\n",
                               "\n\n", "  \n", "&#106;avascript:", "\\", "`", "\"", "'", "onerror=", " "])
# Control characters other than line breaks are refused when a note is saved (issues/editing.py).
PLAIN = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=6)
NOTE = st.lists(st.one_of(MARKDOWNISH, PLAIN), max_size=40).map("".join)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(note=NOTE)
def test_any_note_yields_only_safe_markup_and_links(note):
    rendered = note_html(note)
    for tag, attrs in tags(rendered):
        assert tag in ALLOWED_TAGS, (tag, rendered)
        assert set(attrs) <= {"href", "style"}
        if tag == "a":
            assert link_problem(attrs["href"]) is None and attrs["href"].split(":")[0].lower() in (
                "http", "https", "mailto")
    text = note_text(note)
    if note_problem(note) is None:  # what an editor can save: no script scheme in either part
        for part in (rendered, text):
            assert "javascript:" not in part.lower() and "vbscript:" not in part.lower()


def test_unsafe_link_targets_are_refused_when_saved():
    assert note_problem("[x](javascript:alert(1))").startswith("javascript: is not allowed")
    assert note_problem("<DATA:text/html,x>") is not None
    assert note_problem("[ok](https://a.example) and <mailto:a@b.example> and a: colon") is None


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(note=NOTE)
def test_the_whole_mail_carries_no_unsafe_markup_from_the_note(note):
    compiled = compile_issue(replace(BASE, intro=note))
    page = compiled.html.fill(VALUES)
    text = compiled.text.fill(VALUES)
    assert "<script" not in page.lower()
    for tag, attrs in tags(page):
        for name in ("href", "src"):
            if name in attrs and attrs[name]:
                assert attrs[name].split(":")[0].lower() in ("http", "https", "mailto"), attrs[name]
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
    if note_problem(note) is None:  # prose like "javascript:https://…" is refused when saved (above)
        assert "javascript:" not in " ".join(text_links(text)).lower()
