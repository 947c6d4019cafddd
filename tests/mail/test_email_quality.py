"""What mailbox providers and readers need from the email: accessibility, dark mode, contrast."""

import re
from html.parser import HTMLParser

import pytest

from newsletter.mail.palette import DARK, LIGHT, SHAPE_PAIRS, TEXT_PAIRS, contrast
from newsletter.delivery.transactional import compiled_kind
from tests.issues.test_render import VALUES, compiled_for


class Audit(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.headings, self.tables, self.images, self.links = [], [], [], [], []
        self.html_attrs, self.title, self._in_title, self._link = {}, "", False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.html_attrs = attrs
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        elif tag == "table":
            self.tables.append(attrs)
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self._link = [attrs.get("href", ""), ""]

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "a" and self._link:
            self.links.append((self._link[0], " ".join(self._link[1].split())))
            self._link = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._link is not None:
            self._link[1] += data


def audit(html: str) -> Audit:
    parser = Audit()
    parser.feed(html)
    return parser


@pytest.fixture
def issue_html(sample_engine, settings):
    return compiled_for(sample_engine, settings, "2026-W48").html.fill(VALUES)


def transactional_htmls(settings):
    return [compiled_kind(settings, kind).html.fill(
        {"email": "a@example.com", "action_url": "https://x.example/c", "preferences_url": "https://x.example/p",
         "unsubscribe_url": "https://x.example/u"}) for kind in ("confirm", "confirm_change", "welcome", "goodbye")]


def check_accessible(html: str) -> None:
    found = audit(html)
    assert found.html_attrs.get("lang") == "en" and found.html_attrs.get("dir") == "ltr"
    assert found.title.strip()
    assert found.tables and all(t.get("role") == "presentation" for t in found.tables)
    assert all(img.get("alt") is not None for img in found.images)
    # Headings start at h1 and never skip a level on the way down.
    assert found.headings[0] == 1
    for before, after in zip(found.headings, found.headings[1:]):
        assert after <= before + 1, found.headings
    # Body text at least 14 px (0 px is MJML's inline-block whitespace trick, not text).
    visible = re.sub(r'<div class="wv-preheader" style="display:none;[^"]*">.*?</div>', "", html, flags=re.S)
    sizes = [int(size) for size in re.findall(r"font-size:\s*(\d+)px", visible)]
    assert sizes and min(s for s in sizes if s) >= 14
    vague = {"here", "click here", "read more", "more", "link", "this"}
    for href, text in found.links:
        assert text and text.lower() not in vague, (href, text)
    assert "fonts.googleapis" not in html and "@import" not in html


def test_issue_is_accessible(issue_html):
    check_accessible(issue_html)
    assert len(re.findall(r"<h2", issue_html)) == 1 + 5  # "In this issue", then one per comparison


def test_transactional_mails_are_accessible_and_plain(settings):
    for html in transactional_htmls(settings):
        check_accessible(html)
        assert "Read the full verdict" not in html and "Panel ship" not in html  # no marketing content
        assert settings.site.postal_address in html


def test_dark_mode_and_preheader(issue_html, sample_engine, settings):
    assert '<meta name="color-scheme" content="light dark"' in issue_html
    assert "@media (prefers-color-scheme: dark)" in issue_html
    for key, colour in DARK.items():
        assert key in ("line", "error") or colour in issue_html, key  # those two are for web forms
    preheader = compiled_for(sample_engine, settings, "2026-W48").html.statics[0]
    assert "This week&#39;s verdicts: GroqCloud vs Together AI" in preheader or \
        "This week's verdicts: GroqCloud vs Together AI" in preheader
    assert "display:none" in issue_html.replace(" ", "")
    assert "<!--[if mso | IE]>" in issue_html  # Outlook conditional comments kept


@pytest.mark.parametrize("scheme", [LIGHT, DARK], ids=["light", "dark"])
def test_text_contrast_is_at_least_4_5(scheme):
    for text, background in TEXT_PAIRS:
        ratio = contrast(scheme[text], scheme[background])
        assert ratio >= 4.5, f"{text} on {background}: {ratio:.2f}"


@pytest.mark.parametrize("scheme", [LIGHT, DARK], ids=["light", "dark"])
def test_form_field_borders_are_at_least_3_to_1(scheme):
    for shape, background in SHAPE_PAIRS:
        ratio = contrast(scheme[shape], scheme[background])
        assert ratio >= 3, f"{shape} on {background}: {ratio:.2f}"


def test_contrast_formula_matches_known_values():
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#777777", "#ffffff"), 2) == 4.48
