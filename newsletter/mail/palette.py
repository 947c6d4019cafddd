"""The brand's colours, one place for templates and for the contrast test.

Light values are what most clients show; dark values apply under
prefers-color-scheme: dark. Mail templates and web pages (templates/web/base.html) both read
them, as `light` and `dark`. Every text/background pair in TEXT_PAIRS must
reach WCAG AA (4.5:1); tests/mail/test_email_quality.py checks them.
"""

from __future__ import annotations

LIGHT = {
    "paper": "#f3f0e8",  # page background
    "card": "#ffffff",
    "ink": "#1c1b22",  # body text, button background
    "muted": "#55525e",  # secondary text
    "accent": "#8a1c22",  # links, quote rule
    "bar_track": "#d9e6de",
    "bar_fill": "#1d6b43",
    "button_text": "#ffffff",
    "line": "#8a8594",  # form field and fieldset borders (web pages)
    "error": "#b3261e",  # form errors (web pages)
}

DARK = {
    "paper": "#121116",
    "card": "#1f1d26",
    "ink": "#ecebf0",
    "muted": "#b9b6c4",
    "accent": "#ff9ea3",
    "bar_track": "#3a4a40",
    "bar_fill": "#5fd39a",
    "button_text": "#121116",
    "line": "#807c8c",
    "error": "#ffb4ab",
}

# (text, background) pairs that carry words, by palette key.
TEXT_PAIRS = [
    ("ink", "card"), ("ink", "paper"), ("muted", "card"), ("muted", "paper"),
    ("accent", "card"), ("accent", "paper"), ("button_text", "ink"), ("error", "card"),
]

# (shape, background) pairs a reader must make out without words: WCAG 1.4.11 asks 3:1 for the
# boundary of a form field.
SHAPE_PAIRS = [("line", "card")]


def relative_luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
