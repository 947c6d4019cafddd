"""PNG screenshots of HTML with headless Chromium (Debian's chromium; never a downloaded browser).

Used by `issue preview --screenshots` to show an editor the issue on a phone
(375 px) and a desktop (640 px), in light and dark mode.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from newsletter.errors import UserError
from newsletter.files import write_atomic

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-quic", "--no-first-run", "--disable-sync"]
WIDTHS = (375, 640)
SCHEMES = ("light", "dark")


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise UserError("screenshots need Chromium: install the Debian package `chromium` "
                        "(apt-get install chromium); no browser is ever downloaded")
    return path


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def screenshot_html(html: str, out_stem: Path, chromium=None, widths: tuple[int, ...] = WIDTHS) -> list[Path]:
    """One full-page PNG per width and colour scheme: <stem>-375-light.png, …

    `chromium` reuses a running Playwright browser (one per thread is all Playwright allows).
    """
    if chromium is None:
        with browser() as instance:
            return screenshot_html(html, out_stem, instance, widths)
    paths = []
    for width in widths:
        for scheme in SCHEMES:
            page = chromium.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
            # Offline: the email references no external resources, and none may load.
            page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("about:", "data:")) else route.continue_())
            page.set_content(html, wait_until="load")
            path = out_stem.parent / f"{out_stem.name}-{width}-{scheme}.png"
            write_atomic(path, page.screenshot(full_page=True))  # never through a planted symlink
            page.close()
            paths.append(path)
    return paths
