"""Phase one of a follow-up mail: its stored record into the follow-up template, once per
follow-up and process; phase two (per reader) is the issue's: issues/links.py `issue_message`
fills the same slots and adds the same List-Unsubscribe headers, and the footer is the issue's
(issues/render.py `footer`), so a follow-up carries every link and header an issue does.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from newsletter.config import Settings, operator_templates
from newsletter.issues.followup_models import Followup
from newsletter.issues.note import note_html, note_text
from newsletter.issues.preview import sample_copy
from newsletter.issues.render import footer
from newsletter.issues.view import site_view
from newsletter.mail.compile import CompiledEmail, compile_email
from newsletter.mail.compose import build_template
from newsletter.mail.mime import MessageTemplate
from newsletter.mail.slots import SlotMarker
from newsletter.templating import render



def _moved(was: str | None, now: str) -> str:
    return f"{now} (unchanged)" if was == now else f"{was or '—'} → {now}"


def _tools(view: dict) -> list[dict]:
    """Each tool then and now, matched by slug (or name), in today's order."""
    then = {tool.get("slug") or tool["name"]: tool for tool in view["then"]["tools"]}
    rows = []
    for tool in view["now"]["tools"]:
        was = then.get(tool.get("slug") or tool["name"], {})
        rows.append({"name": tool["name"], "ship": _moved(was.get("panel_ship_text"), tool["panel_ship_text"]),
                     "price": _moved(was.get("entry_price"), tool["entry_price"])})
    return rows


def context(settings: Settings, followup: Followup, slot: SlotMarker) -> dict:
    """What templates/email/followup.*.j2 see."""
    view = followup.view
    site = site_view(settings)
    return {"site": site, "subject": followup.subject, "preheader": followup.preheader,
            "kicker": "Verdict update", "title": view["title"], "url": view["url"], "week": view["week"],
            "note_html": note_html(followup.note), "note_text": note_text(followup.note),
            "changes": view["changes"], "then_line": view["then"]["verdict_line"],
            "now_line": view["now"]["verdict_line"], "tools": _tools(view),
            **footer(site, slot, None)}


def compile_followup(settings: Settings, followup: Followup) -> CompiledEmail:
    return compile_email("followup", followup.subject, lambda slot: context(settings, followup, slot), render)


_templates: OrderedDict[bytes, MessageTemplate] = OrderedDict()
_lock = threading.Lock()
KEPT = 8


def followup_template(settings: Settings, followup: Followup) -> MessageTemplate:
    """Compiled once per process for the same record, settings and template folders (as
    issues/render.py `issue_template`): a worker's every batch reuses it."""
    key = hashlib.sha256(repr((settings, operator_templates(), followup.id, followup.subject, followup.preheader,
                               followup.note, followup.view)).encode()).digest()
    with _lock:
        if key in _templates:
            _templates.move_to_end(key)
            return _templates[key]
    template = build_template(settings, compile_followup(settings, followup))
    with _lock:
        _templates[key] = template
        while len(_templates) > KEPT:
            _templates.popitem(last=False)
    return template


def render_preview(settings: Settings, followup: Followup) -> tuple[str, str, bytes]:
    """HTML, text and the whole message for a sample reader, through the send path."""
    return sample_copy(settings, compile_followup(settings, followup))
