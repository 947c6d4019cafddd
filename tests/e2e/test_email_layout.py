"""The issue on a phone: no horizontal scrolling, in light and dark mode."""

import pytest

from newsletter.issues.drafting import draft_issue
from newsletter.issues.preview import write_preview


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_phone_layout_has_no_horizontal_scroll(chromium, sample_engine, settings, tmp_path, scheme):
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    html_path = write_preview(sample_engine, settings, issue.id, tmp_path)[0]
    for width in (320, 375):
        page = chromium.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
        page.goto(html_path.as_uri())
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        widest = page.evaluate("Math.max(...[...document.querySelectorAll('body *')]"
                               ".map(e => e.getBoundingClientRect().right))")
        page.close()
        assert scroll_width <= width, f"{width}px: the page scrolls sideways ({scroll_width}px wide)"
        assert widest <= width + 1, f"{width}px: an element reaches {widest}px"


ONE_LINE = """() => [...document.querySelectorAll('.wv-vote a')].map(a => {
  const range = document.createRange(); range.selectNodeContents(a);
  return [a.textContent, new Set([...range.getClientRects()].map(r => Math.round(r.top))).size];
})"""


def test_vote_buttons_keep_long_labels_on_one_line_on_a_phone(chromium, tmp_path):
    """Real buttons whose labels never break mid-label at 375 px: the longest names readers meet
    ("Together AI Inference Engine", and the sample's 40-character "Ship Hugging Face Inference
    Providers v2") and "Pass on both"; at 320 px nothing may reach past the screen either."""
    from datetime import UTC, datetime

    from newsletter.config import load_settings
    from newsletter.content.importer import import_files, sample_files
    from newsletter.db import make_engine
    from newsletter.issues.preview import render_preview
    from tests.conftest import write_config
    from tests.content_files import comparison, write_content
    from tests.db_templates import migrate_fresh

    settings = load_settings(write_config(tmp_path))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    doc = comparison("long-names", datetime(2026, 11, 24, 9, tzinfo=UTC))
    doc["tools"][0]["name"], doc["tools"][1]["name"] = "Together AI Inference Engine", "GroqCloud"
    import_files(engine, [*sample_files(), write_content(tmp_path / "long.json", [doc])])
    html = render_preview(engine, settings, draft_issue(engine, settings, "2026-W48").issue.id)[0]
    engine.dispose()
    for width in (375, 320):
        page = chromium.new_page(viewport={"width": width, "height": 800})
        page.set_content(html)
        labels = dict(page.evaluate(ONE_LINE))
        widest = page.evaluate("Math.max(...[...document.querySelectorAll('body *')]"
                               ".map(e => e.getBoundingClientRect().right))")
        page.close()
        assert widest <= width + 1, f"{width}px: an element reaches {widest}px"
        for label in ("Ship Together AI Inference Engine", "Ship Hugging Face Inference Providers v2",
                      "Pass on both"):
            assert label in labels, (label, sorted(labels))
            if width == 375:
                assert labels[label] == 1, f"{width}px: '{label}' breaks over {labels[label]} lines"
