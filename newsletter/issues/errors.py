"""Why an action on an issue was refused, as types: the CLI prints the message; the console
and the REST API also need the kind (not found, not editable, a move the states forbid) and the
field, to answer 404, 409 or 422 with a stable code instead of parsing the text."""

from __future__ import annotations

from newsletter.errors import UserError


class IssueError(UserError):
    """Bad input for an issue action: `field` names the input ("" when it is the request as a whole)."""

    code = "invalid_request"
    status = 422

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class IssueNotFound(IssueError):
    code, status = "not_found", 404


class NotEditable(IssueError):
    """The issue's content can no longer change (it is sending, sent or cancelled)."""

    code, status = "issue_not_editable", 409


class InvalidTransition(IssueError):
    """The issue's state does not allow the move (issues/states.py TRANSITIONS)."""

    code, status = "invalid_transition", 409
