"""BENCHMARKS.md: each benchmark owns one marked section and replaces only that one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_section(start: str, end: str, section: str, path: Path = ROOT / "BENCHMARKS.md") -> Path:
    """Replace the text between `start` and `end` (markers included) or append the section."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: section, text, flags=re.DOTALL)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    return path
