"""Preview files of an issue: what a reader gets, with sample personal links.

The preview goes through exactly the send path (compile once, fill slots,
assemble MIME), so what the editor checks is what subscribers receive.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError
from newsletter.issues.errors import IssueNotFound
from newsletter.files import ensure_folder, write_atomic
from newsletter.issues.links import IssueRecipient, issue_message, recipient_links
from newsletter.mail.compile import CompiledEmail
from newsletter.mail.compose import build_template
from newsletter.issues.models import Issue
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from newsletter.tokens import TEST_READER

PREVIEW_SECRET = "preview-only-links-do-not-verify-anywhere"
PREVIEW_RECIPIENT = IssueRecipient("reader@example.com", "Sample Reader", TEST_READER, "preview")


def sample_copy(settings: Settings, compiled: CompiledEmail) -> tuple[str, str, bytes]:
    """HTML, text and the whole message of `compiled` (an issue or a follow-up) for a sample reader,
    through the send path. Its links are signed with a key nothing verifies: a preview file
    passed around must not carry working links."""
    values = {"email": PREVIEW_RECIPIENT.email, **recipient_links(settings, PREVIEW_SECRET, TEST_READER)}
    message, _ = issue_message(settings, PREVIEW_SECRET, build_template(settings, compiled),
                               PREVIEW_RECIPIENT, utcnow())
    return compiled.html.fill(values, _html_escape), compiled.text.fill(values), message.data


def render_preview(engine: Engine, settings: Settings, issue_id: int) -> tuple[str, str, bytes]:
    """The issue's HTML, text and whole message for a sample reader, through the send path."""
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None:
            raise IssueNotFound(f"issue {issue_id} does not exist (see `newsletter issue list`)")
        compiled = compile_issue(build_issue_view(session, settings, issue))
    return sample_copy(settings, compiled)


def write_preview(engine: Engine, settings: Settings, issue_id: int, out: Path,
                  screenshots: bool = False, chromium=None) -> list[Path]:
    html, text, data = render_preview(engine, settings, issue_id)
    ensure_folder(out)
    stem = out / f"issue-{issue_id}"
    paths = [write_atomic(stem.with_suffix(".html"), html), write_atomic(stem.with_suffix(".txt"), text),
             write_atomic(stem.with_suffix(".eml"), data)]
    # Sanity: the .eml must parse back to the same parts we wrote.
    parsed = message_from_bytes(data, policy=policy.default)
    if parsed.get_body(("html",)) is None:
        raise UserError("preview: the assembled message has no HTML part")
    if screenshots:
        from newsletter.issues.screenshots import screenshot_html

        paths += screenshot_html(html, stem, chromium)
    return paths


def _html_escape(value: str) -> str:
    import html

    return html.escape(value, quote=True)
