"""`issue test`: the issue to a few editors' addresses, subject marked [TEST].

It goes through the same compile and assembly as a real send, straight to the
transport, and leaves no delivery row: a test is not a send and does not stop
the issue from going to those addresses later.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery.transports import make_transport
from newsletter.errors import UserError
from newsletter.issues.message import Recipient, build_template, issue_message
from newsletter.issues.models import Issue
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from subscribers.service import InvalidInput, normalize_email

MAX_TEST_RECIPIENTS = 20


def send_test(engine: Engine, settings: Settings, secret: str, issue_id: int,
              addresses: list[str]) -> list[tuple[str, str]]:
    addresses = [part.strip() for value in addresses for part in value.split(",") if part.strip()]
    if not addresses or len(addresses) > MAX_TEST_RECIPIENTS:
        raise UserError(f"--to: give 1 to {MAX_TEST_RECIPIENTS} addresses")
    try:
        emails = [normalize_email(address, "--to") for address in addresses]
    except InvalidInput as exc:
        raise UserError(str(exc))
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None:
            raise UserError(f"issue {issue_id} does not exist (see `newsletter issue list`)")
        compiled = compile_issue(build_issue_view(session, settings, issue))
    template = build_template(settings, replace(compiled, subject=f"[TEST] {compiled.subject}"))
    run = secrets.token_hex(4)
    now = utcnow()
    messages = [issue_message(settings, secret, template, Recipient(email, "", 0, f"test-i{issue_id}-{run}-{n}"), now)[0]
                for n, email in enumerate(emails)]
    transport = make_transport(settings)
    try:
        results = transport.send(messages)
    finally:
        transport.close()
    return [(email, result.outcome.value if result.error is None else f"{result.outcome.value}: {result.error}")
            for email, result in zip(emails, results)]
