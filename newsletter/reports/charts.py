"""Bar charts as inline SVG, made on the server.

Why SVG strings and no chart library: the console's CSP is script-src 'none', so a chart
must be markup; a dozen bars need no dependency. Each chart is an image to assistive
technology (role="img" named by its <title> and described by its <desc>, which also says every
value); pages show the same numbers in a table beside it. Colours come from the page: bars use
the site's --bar_fill variable (with the light value as fallback, for the standalone report)
and text uses currentColor, so a chart follows light and dark like the text around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

# viewBox units: a chart is drawn about 280-360 px wide, so 13 units of text read as 11-13 px.
WIDTH, HEIGHT, AXIS, TOP, GAP = 360, 120, 20, 18, 5
ROW, LABEL = 24, 110  # horizontal charts: row height, label column
BAR_STYLE = "fill:var(--bar_fill,#1d6b43)"


def short_label(label: str) -> str:
    """An ISO week "2026-W48" shows as "W48" under its bar (a dozen fit on a phone); other labels
    as the caller made them."""
    return label[5:] if len(label) == 8 and label[4:6] == "-W" else label


def describe(labels: Sequence[str], values: Sequence[int]) -> str:
    return "; ".join(f"{label}: {value}" for label, value in zip(labels, values)) or "No data yet."


def _open(chart_id: str, title: str, text: str, height: float) -> list[str]:
    ident = escape(chart_id, quote=True)
    return [f'<svg class="chart" role="img" aria-labelledby="{ident}-title {ident}-desc" '
            f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
            f'xmlns="http://www.w3.org/2000/svg" font-size="13" fill="currentColor">',
            f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{escape(text)}</desc>']


def bar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[int], note: str = "") -> str:
    """One series of non-negative integers as vertical bars, each labelled below and valued above."""
    count = max(len(values), 1)
    peak = max(values, default=0) or 1
    bar = (WIDTH - GAP * (count + 1)) / count
    parts = _open(chart_id, title, f"{note} {describe(labels, values)}".strip(), HEIGHT + AXIS + TOP)
    base = TOP + HEIGHT
    for index, (label, value) in enumerate(zip(labels, values)):
        tall = HEIGHT * max(value, 0) / peak
        x = GAP + index * (bar + GAP)
        middle = x + bar / 2
        parts.append(f'<rect x="{x:.1f}" y="{base - tall:.1f}" width="{bar:.1f}" height="{tall:.1f}" '
                     f'style="{BAR_STYLE}"/>')
        parts.append(f'<text x="{middle:.1f}" y="{base - tall - 4:.1f}" text-anchor="middle">{value}</text>')
        parts.append(f'<text x="{middle:.1f}" y="{base + 15}" text-anchor="middle">{escape(short_label(label))}</text>')
    parts.append(f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="currentColor" stroke-width="1"/>')
    if not values:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + HEIGHT / 2}" text-anchor="middle">No data yet</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[int], note: str = "") -> str:
    """Labelled figures of different kinds as horizontal bars: long labels stay readable on a phone."""
    peak = max(values, default=0) or 1
    span = WIDTH - LABEL - 48  # room for the value after the longest bar
    parts = _open(chart_id, title, f"{note} {describe(labels, values)}".strip(), ROW * max(len(values), 1) + 4)
    for index, (label, value) in enumerate(zip(labels, values)):
        y = 2 + index * ROW
        long = span * max(value, 0) / peak
        parts.append(f'<text x="{LABEL - 6}" y="{y + 16}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{LABEL}" y="{y + 3}" width="{long:.1f}" height="{ROW - 6}" style="{BAR_STYLE}"/>')
        parts.append(f'<text x="{LABEL + long + 4:.1f}" y="{y + 16}">{value}</text>')
    parts.append(f'<line x1="{LABEL}" y1="0" x2="{LABEL}" y2="{ROW * max(len(values), 1) + 4}" '
                 'stroke="currentColor" stroke-width="1"/>')
    parts.append("</svg>")
    return "".join(parts)
