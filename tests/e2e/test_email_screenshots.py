"""The sample issue in Chromium at 375 and 1280 px, light and dark, against reviewed golden files.

Two kinds of golden file in tests/e2e/golden/, regenerated together with `UPDATE_GOLDEN=1`:
- issue-layout.json, compared: what a reader sees, as facts that do not move with a font's
  metrics or an antialiasing change: the order of the masthead, the list, the cards, the call to
  action and the footer; the tools side by side or stacked; every vote label on one line; nothing
  wider than the screen; the colours of page, card, text, links and buttons in each scheme.
- issue-{width}-{scheme}.jpg, kept for people: the screenshots that were looked at when the layout
  file was written (docs/email-quality.md says what was checked). They are not compared pixel by
  pixel: that would fail on every font or Chromium update without anything a reader would notice.
Every button's text must also reach WCAG AA contrast on its button in both schemes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from newsletter.config import load_settings
from newsletter.content.importer import import_files, sample_files
from newsletter.db import make_engine
from newsletter.issues.drafting import draft_issue
from newsletter.issues.preview import render_preview
from newsletter.mail.palette import contrast
from tests.conftest import write_config
from tests.db_templates import migrate_fresh

GOLDEN = Path(__file__).resolve().parent / "golden"
WIDTHS = (375, 1280)
SCHEMES = ("light", "dark")

FINGERPRINT = """() => {
  const q = s => [...document.querySelectorAll(s)];
  const top = e => Math.round(e.getBoundingClientRect().top);
  const lines = e => { const r = document.createRange(); r.selectNodeContents(e);
                       return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; };
  const style = (e, p) => getComputedStyle(e)[p];
  const link = text => q('a').find(a => a.textContent.trim().startsWith(text));
  const marks = [['name', document.querySelector('h1')], ['date', document.querySelector('h1 + p')],
                 ['contents', q('h2').find(h => h.textContent.trim() === 'In this issue')],
                 ...q('h2[id^="c"]').map(h => ['card ' + h.id, h]),
                 ['call to action', link('Get the next comparison')], ['footer', link('Unsubscribe')]];
  const cards = q('h2[id^="c"]').map(h => h.closest('.wv-page'));
  const tools = cards.map(card => { const tops = [...card.querySelectorAll('h3')].map(top);
                                    return new Set(tops).size === 1 ? 'side by side' : 'stacked'; });
  const button = q('.wv-button td')[0], pass = q('.wv-button-alt td')[0];
  return {
    order: marks.filter(m => m[1]).sort((a, b) => top(a[1]) - top(b[1])).map(m => m[0]),
    missing: marks.filter(m => !m[1]).map(m => m[0]),
    fits_the_screen: document.documentElement.scrollWidth <= innerWidth,
    tools: tools,
    vote_buttons: q('.wv-vote a').length,
    vote_labels_on_one_line: q('.wv-vote a').every(a => lines(a) === 1),
    colours: {
      page: style(document.querySelector('.wv-body'), 'backgroundColor'),
      card: style(document.querySelector('.wv-card'), 'backgroundColor'),
      heading: style(document.querySelector('h2[id^="c"]'), 'color'),
      text: style(document.querySelector('.wv-card p:not(.wv-kicker)'), 'color'),
      link: style(q('ol a')[0], 'color'),
      button: [style(button, 'backgroundColor'), style(button.querySelector('a'), 'color')],
      pass_button: [style(pass, 'borderTopColor'), style(pass.querySelector('a'), 'color'),
                    style(pass, 'backgroundColor')],
    },
  };
}"""


def hex_of(rgb: str) -> str:
    red, green, blue = (int(n) for n in re.findall(r"\d+", rgb)[:3])
    return f"#{red:02x}{green:02x}{blue:02x}"


def sample_issue_html(tmp_path) -> str:
    settings = load_settings(write_config(tmp_path))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    import_files(engine, sample_files())
    issue = draft_issue(engine, settings, "2026-W48").issue
    html = render_preview(engine, settings, issue.id)[0]
    engine.dispose()
    return html


def test_the_issue_looks_as_reviewed_on_a_phone_and_a_desktop_in_light_and_dark(chromium, tmp_path):
    html = sample_issue_html(tmp_path)
    update = os.environ.get("UPDATE_GOLDEN") == "1"
    seen = {}
    for width in WIDTHS:
        for scheme in SCHEMES:
            page = chromium.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
            page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("about:", "data:"))
                       else route.continue_())
            page.set_content(html, wait_until="load")
            facts = page.evaluate(FINGERPRINT)
            if update:
                (GOLDEN / f"issue-{width}-{scheme}.jpg").write_bytes(
                    page.screenshot(full_page=True, type="jpeg", quality=40))
            page.close()
            for name in ("button", "pass_button"):
                edge, text = facts["colours"][name][:2]
                background = edge if name == "button" else facts["colours"]["card"]
                ratio = contrast(hex_of(text), hex_of(background))
                assert ratio >= 4.5, f"{width}px {scheme}: {name} text {text} on {background}: {ratio:.2f}"
            seen[f"{width}-{scheme}"] = facts
    path = GOLDEN / "issue-layout.json"
    if update:
        path.write_text(json.dumps(seen, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    for key, facts in seen.items():
        assert facts == expected[key], (f"{key}: the issue's layout differs from {path.name}; if intended, "
                                        f"rerun with UPDATE_GOLDEN=1, LOOK at the screenshots, commit both")
