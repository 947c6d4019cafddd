"""Every mail and every page, light and dark: axe-core finds nothing serious, and every button
label stands out from the button it is painted on (WCAG AA, 4.5:1).

Run in Debian's Chromium with prefers-color-scheme emulated, on what a reader really gets:
the HTML part of each .eml the file transport wrote, the pages served by a live uvicorn, and
the answers to form posts (tests/e2e/corpus.py).
"""

import os
import struct
from pathlib import Path

import pytest

from newsletter.files import write_atomic
from newsletter.mail.palette import contrast, relative_luminance
from tests.e2e.axe import label_colours, page_background, rgb_to_hex, violations

SCHEMES = ["light", "dark"]
HTML_MAILS = ["issue", "confirmation", "confirm_change", "welcome", "goodbye", "test_send", "followup"]
# Each page with the words that show it is in the state meant (not, say, an expired-link page).
PAGES = {"signup": "Get the weekly verdicts", "embed": "Get the weekly verdicts", "not_found": "Not found",
         "invalid_link": "This link does not work", "confirm": "Confirm your new address",
         "preferences": "Save preferences", "vote": "GroqCloud vs Together AI", "web_view": "Your vote",
         "comparison": "Reviewer scorecard", "tool": "Verdict history", "unsubscribe": "Unsubscribe?", "archive": "All issues",
         "admin_login": "Sign in", "admin_set_password": "Choose your password"}
ANSWERS = {"signup_errors": "An email address must have", "check_inbox": "Check your inbox",
           "confirm_signup": "Confirm your subscription", "confirmed": "You are in",
           "preferences_saved": "Saved.", "preferences_error": "Change address", "address_change_sent":
           "We sent a confirmation", "vote_recorded": "your vote counts", "unsubscribed": "You are unsubscribed",
           "admin_login_error": "do not match", "admin_dashboard": "Readers by status", "admin_audit": "editor.login",
           "admin_editors": "API tokens", "admin_settings": "[site]", "admin_webhooks": "Recent deliveries",
           "admin_editor_added": "is an editor", "admin_token_created": "Copy the token now",
           "admin_last_owner": "last owner", "admin_webhook_created": "signing secret",
           "admin_webhook_refused": "must start with https://", "admin_readers": "sam.leaver@example.com",
           "admin_reader": "Consent history", "admin_reader_forget": "cannot be undone",
           "admin_suppressions": "bounced.reader@example.com", "admin_issues": "Draft the issue of a week",
           "admin_issue": "Pre-send checks", "admin_issue_send": "Send to", "admin_issue_progress": "Refresh the figures",
           "admin_stats": "Issues over time", "admin_stats_issue": "Votes on its comparisons",
           "admin_stats_comparisons": "Vote digest", "admin_comparisons": "Show comparisons",
           "admin_comparison_form": "reviews by lens", "admin_comparison_errors": "Nothing was saved",
           "admin_comparison_history": "Mark its facts checked today",
           "admin_import": "Import readers", "admin_import_error": "not a CSV text file",
           "admin_import_mapping": "Check where each column goes", "admin_import_progress": "Rows read: 3 of 7",
           "admin_import_summary": "Would be new", "admin_followups": "Draft a follow-up about",
           "admin_followup_new": "the panel now says", "admin_followup": "Send to 1 reader",
           "admin_followup_send": "Send to 1 reader"}
# The things a reader presses: MJML buttons in mail, <button> and links drawn as buttons on pages.
BUTTONS = ".wv-button a, button, a.button"


def _offline(page):
    """Mail is judged as a client shows it: nothing but the message itself loads."""
    page.route("**/*", lambda route: route.abort())


def open_in(chromium, scheme, *, html=None, url=None, width=600):
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    if url:
        page.goto(url)
    else:
        _offline(page)
        page.set_content(html, wait_until="load")
    return page


def check_schemes(chromium, axe_source, what, expected="", **source) -> dict[str, list]:
    """`check` in light, then dark, on one loaded page; the button labels found in each.

    Switching the emulated scheme re-applies every prefers-color-scheme rule at once, as a mail
    client or browser does when the system's scheme changes; no script of ours runs on these pages
    (mail has none, pages forbid it), so nothing else depends on the scheme at load. Loading and
    injecting axe once instead of twice took a third off this file's time. `check` asserts that the
    background follows each scheme, so a dark pass that did not take effect fails."""
    page = open_in(chromium, SCHEMES[0], **source)
    found, failures = {}, []
    try:
        for scheme in SCHEMES:  # both schemes are judged, and a failure in either names its scheme
            page.emulate_media(color_scheme=scheme)
            try:
                found[scheme] = check(page, axe_source, scheme, what, expected)
            except AssertionError as failure:
                failures.append(str(failure))
    finally:
        page.close()
    assert not failures, "\n".join(failures)
    return found


def check(page, axe_source, scheme, what, expected=""):
    assert expected in page.inner_text("body"), f"{what}: not the page meant ({expected!r} missing)"
    found = violations(page, axe_source)
    assert not found, f"{what} ({scheme}): " + "\n".join(found)
    labels = label_colours(page, BUTTONS)
    for label in labels:
        ratio = contrast(rgb_to_hex(label["color"]), rgb_to_hex(label["background"]))
        assert ratio >= 4.5, f"{what} ({scheme}): button {label['text']!r} is {label['color']} on " \
                             f"{label['background']}: {ratio:.2f}:1"
    background = relative_luminance(page_background(page))
    assert (background < 0.05) if scheme == "dark" else (background > 0.7), \
        f"{what} ({scheme}): the background {page_background(page)} does not follow the colour scheme"
    return labels


def test_every_html_mail_is_covered(corpus):
    with_html = {kind for kind in corpus.mails if corpus.html_of(kind)}
    assert with_html == set(HTML_MAILS)
    assert corpus.message("notice").get_content_type() == "text/plain"  # no colours to get wrong


@pytest.mark.parametrize("kind", HTML_MAILS)
def test_mail(chromium, corpus, axe_source, kind):
    labels = check_schemes(chromium, axe_source, kind, html=corpus.html_of(kind))
    if kind != "goodbye":  # the goodbye mail has nothing left to press
        for scheme, found in labels.items():
            assert found, f"{kind} ({scheme}): no button found to check"


@pytest.mark.parametrize("name", PAGES)
def test_page(chromium, corpus, axe_source, name):
    for width in (375,):  # widths matter for layout, not colour; screenshots cover 1280 px
        check_schemes(chromium, axe_source, f"{name} at {width}px", PAGES[name], url=corpus.pages[name], width=width)


@pytest.mark.parametrize("name", ANSWERS)
def test_form_answer(chromium, corpus, axe_source, name):
    check_schemes(chromium, axe_source, name, ANSWERS[name], html=corpus.answers[name])


# --- Reflow (WCAG 1.4.10) and the reviewed screenshots of the publication's pages -----------------
# The comparison, tool and issue pages on a phone (375 px) and a desktop (1280 px), light and dark:
# no sideways scroll; the tools side by side on a desktop and stacked on a phone; the scorecard a
# lens-by-tool grid on a desktop, one column on a phone. Here, not in a file of their own, because
# they need the same corpus (built once per test worker).
# The reviewed screenshots are kept in tests/web/golden/screens/<page>-<width>-<scheme>.jpg (JPEG:
# enough to review a layout by eye, smaller than PNG). Fonts differ between machines, so the check
# against them is tolerant (same width, height within a quarter); the assertions carry the structure.
# After an intended change: `UPDATE_GOLDEN=1 pytest tests/e2e/test_accessibility.py -k lay_out`, look
# at the new screenshots, commit them.

SCREENS = Path(__file__).resolve().parent.parent / "web" / "golden" / "screens"
LAID_OUT = ("comparison", "tool", "web_view")
WIDTHS = (375, 1280)
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
BOXES = """selector => [...document.querySelectorAll(selector)].map(e => {
    const r = e.getBoundingClientRect(); return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; })"""


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    raise ValueError("no start-of-frame segment: not a JPEG")


def _layout(page, name: str, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways at {width}px"
    if name != "comparison":
        return
    tools = page.evaluate(BOXES, "article.tool")
    cells = page.evaluate(BOXES, "table.grid tbody td")
    assert len(tools) == 2 and len(cells) == 4 * 2
    if width >= 1000:
        assert tools[0]["top"] == tools[1]["top"] and tools[0]["right"] <= tools[1]["left"], "tools not side by side"
        assert cells[0]["top"] == cells[1]["top"], "scorecard cells of one lens are not in one row"
    else:
        assert tools[1]["top"] >= tools[0]["bottom"], "tools not stacked on a phone"
        assert cells[1]["top"] >= cells[0]["bottom"], "scorecard cells not stacked on a phone"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", WIDTHS)
def test_pages_lay_out_on_phone_and_desktop(chromium, corpus, width, scheme):
    for name in LAID_OUT:
        page = chromium.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
        try:
            page.goto(corpus.pages[name])
            _layout(page, name, width)
            golden = SCREENS / f"{name}-{width}-{scheme}.jpg"
            if UPDATE:
                golden.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(golden, page.screenshot(full_page=True, type="jpeg", quality=70))
                continue
            # A full-page screenshot is the document's size: measured, not taken (encoding one costs more
            # CPU than the rest of the test).
            got_width, got_height = page.evaluate("[document.documentElement.scrollWidth, "
                                                  "document.documentElement.scrollHeight]")
        finally:
            page.close()
        assert golden.exists(), f"{golden.name} missing: run with UPDATE_GOLDEN=1, look at it, commit it"
        golden_width, golden_height = jpeg_size(golden.read_bytes())
        assert got_width == golden_width, f"{name} at {width}px ({scheme}) is {got_width}px wide"
        assert abs(got_height - golden_height) <= golden_height / 4, \
            f"{name} at {width}px ({scheme}): {got_height}px high, the reviewed one {golden_height}px"
