"""axe-core (Deque's accessibility engine, from the npm registry) run inside Debian's Chromium.

The script is installed once into a cache folder with the machine's npm and injected into each
page with Playwright. Only "serious" and "critical" violations fail a test; color-contrast is
one of them, computed by axe from the styles the browser actually applied (media queries,
!important, inline styles), so a dark-mode rule that an inline style defeats is caught.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

AXE_PACKAGE = "axe-core@4.14"  # a minor line: new rules arrive with a deliberate bump, not by surprise
FAILING_IMPACTS = ("serious", "critical")


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "weekly-verdicts" / AXE_PACKAGE.replace("@", "-")


def install_axe() -> str:
    """The source of axe.min.js; raises RuntimeError saying why it cannot be had."""
    folder = cache_dir()
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    folder.mkdir(parents=True, exist_ok=True)
    # One npm at a time into the shared cache: test workers (pytest-xdist) and other checkouts run
    # concurrently, and two installs into one folder can leave it half-written.
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not script.exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is not installed (Debian package npm); it fetches axe-core")
            done = subprocess.run([npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                                   "--no-save", "--loglevel=error", AXE_PACKAGE],
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0 or not script.exists():
                raise RuntimeError(f"npm install {AXE_PACKAGE} failed: {done.stderr.strip()[-500:]}")
        return script.read_text(encoding="utf-8")


def violations(page, source: str) -> list[str]:
    """Serious and critical violations on the page, one line each with the offending elements."""
    # Evaluated through the DevTools protocol, not injected as a <script>: the pages' own
    # Content-Security-Policy (script-src 'none') stays in force while axe reads them.
    if not page.evaluate("() => typeof window.axe === 'object'"):  # once per loaded page
        page.evaluate(f"() => {{ {source}\n }}")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    lines = []
    for violation in result["violations"]:
        if violation["impact"] in FAILING_IMPACTS:
            for node in violation["nodes"]:
                lines.append(f"{violation['id']} ({violation['impact']}): {node['target']} "
                             f"{node.get('failureSummary', '').splitlines()[-1].strip()}")
    return lines


# For each element: its text colour and the first opaque background colour found on it or an
# ancestor (what the label is painted on), as the browser computed them.
_COLOURS = """(selector) => [...document.querySelectorAll(selector)]
  .filter(e => e.offsetParent !== null && e.textContent.trim())
  .map(e => {
    let bg = null;
    for (let n = e; n && !bg; n = n.parentElement) {
      const c = getComputedStyle(n).backgroundColor;
      if (c && c !== 'transparent' && !c.startsWith('rgba(0, 0, 0, 0)')) bg = c;
    }
    return {text: e.textContent.trim(), color: getComputedStyle(e).color, background: bg || 'rgb(255, 255, 255)'};
  })"""


def rgb_to_hex(css: str) -> str:
    """`rgb(18, 17, 22)` (or rgba with full alpha) → `#121116`."""
    numbers = css[css.index("(") + 1:css.index(")")].replace(",", " ").split()
    return "#" + "".join(f"{int(float(n)):02x}" for n in numbers[:3])


def label_colours(page, selector: str) -> list[dict]:
    return page.evaluate(_COLOURS, selector)


def page_background(page) -> str:
    """The colour a reader sees around the content: the body's, or the root's if the body has none."""
    return rgb_to_hex(page.evaluate(
        "() => { const b = getComputedStyle(document.body).backgroundColor;"
        " return b.startsWith('rgba(0, 0, 0, 0)') ? getComputedStyle(document.documentElement).backgroundColor"
        " : b; }"))
