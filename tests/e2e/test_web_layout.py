"""The publication's pages laid out as a reader sees them, on a phone (375 px) and a desktop
(1280 px), light and dark: no sideways scroll; the comparison's tools side by side on a desktop and
stacked on a phone; the scorecard a lens-by-tool grid on a desktop and one column on a phone.

The reviewed screenshots are kept in tests/web/golden/screens/ (<page>-<width>-<scheme>.jpg: JPEG,
a quarter of the PNGs' size, is plenty to review a layout by eye). They were looked at when written;
fonts differ between machines, so the check against them is a tolerant one (same width, height
within a quarter) and the layout assertions above carry the structure. After an intended change: `UPDATE_GOLDEN=1 pytest tests/e2e/test_web_layout.py`, look at
the new PNGs, commit them.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from newsletter.files import write_atomic

SCREENS = Path(__file__).resolve().parent.parent / "web" / "golden" / "screens"
PAGES = ("comparison", "tool", "web_view")
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
    for name in PAGES:
        page = chromium.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
        try:
            page.goto(corpus.pages[name])
            _layout(page, name, width)
            shot = page.screenshot(full_page=True, type="jpeg", quality=70)
        finally:
            page.close()
        golden = SCREENS / f"{name}-{width}-{scheme}.jpg"
        if UPDATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(golden, shot)
            continue
        assert golden.exists(), f"{golden.name} missing: run with UPDATE_GOLDEN=1, look at it, commit it"
        (golden_width, golden_height), (got_width, got_height) = jpeg_size(golden.read_bytes()), jpeg_size(shot)
        assert got_width == golden_width, f"{name} at {width}px ({scheme}) is {got_width}px wide"
        assert abs(got_height - golden_height) <= golden_height / 4, \
            f"{name} at {width}px ({scheme}): {got_height}px high, the reviewed one {golden_height}px"
