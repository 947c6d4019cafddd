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

WIDTH, HEIGHT, AXIS, TOP, GAP = 560, 160, 22, 16, 6
BAR_STYLE = "fill:var(--bar_fill,#1d6b43)"


def short_label(label: str) -> str:
    """An ISO week "2026-W48" shows as "W48" under its bar (a dozen fit on a phone); other labels
    as the caller made them."""
    return label[5:] if len(label) == 8 and label[4:6] == "-W" else label


def describe(labels: Sequence[str], values: Sequence[int]) -> str:
    return "; ".join(f"{label}: {value}" for label, value in zip(labels, values)) or "No data yet."


def bar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[int], note: str = "") -> str:
    """One series of non-negative integers as vertical bars, each labelled below and valued above."""
    count = max(len(values), 1)
    peak = max(values, default=0) or 1
    bar = (WIDTH - GAP * (count + 1)) / count
    ident = escape(chart_id, quote=True)
    text = escape(f"{note} {describe(labels, values)}".strip())
    parts = [f'<svg class="chart" role="img" aria-labelledby="{ident}-title {ident}-desc" '
             f'viewBox="0 0 {WIDTH} {HEIGHT + AXIS + TOP}" width="100%" preserveAspectRatio="xMidYMid meet" '
             f'xmlns="http://www.w3.org/2000/svg" font-size="12" fill="currentColor">',
             f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{text}</desc>']
    base = TOP + HEIGHT
    for index, (label, value) in enumerate(zip(labels, values)):
        tall = HEIGHT * max(value, 0) / peak
        x = GAP + index * (bar + GAP)
        middle = x + bar / 2
        parts.append(f'<rect x="{x:.1f}" y="{base - tall:.1f}" width="{bar:.1f}" height="{tall:.1f}" '
                     f'style="{BAR_STYLE}"/>')
        parts.append(f'<text x="{middle:.1f}" y="{base - tall - 4:.1f}" text-anchor="middle">{value}</text>')
        parts.append(f'<text x="{middle:.1f}" y="{base + 16}" text-anchor="middle">{escape(short_label(label))}</text>')
    parts.append(f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="currentColor" stroke-width="1"/>')
    if not values:
        parts.append(f'<text x="{WIDTH / 2}" y="{TOP + HEIGHT / 2}" text-anchor="middle">No data yet</text>')
    parts.append("</svg>")
    return "".join(parts)
