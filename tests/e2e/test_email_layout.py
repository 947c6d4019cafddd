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
