"""Issue states: the one table of allowed moves, and the one function that makes them."""

import re
from pathlib import Path

import pytest

from newsletter.db import session_scope
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.issues.states import TRANSITIONS, IssueState, sources, transition

PACKAGE = Path(__file__).resolve().parents[2] / "newsletter"


def test_a_move_the_table_does_not_allow_changes_nothing(sample_engine, settings):
    issue_id = draft_issue(sample_engine, settings, "2026-W48").issue.id
    with session_scope(sample_engine) as session:
        assert not transition(session, issue_id, IssueState.paused)  # draft → paused is no move
        assert not transition(session, issue_id, IssueState.sent)
        assert transition(session, issue_id, IssueState.sending, only=(IssueState.draft,))
        assert not transition(session, issue_id, IssueState.sending, only=(IssueState.draft,))  # one wins
        assert transition(session, issue_id, IssueState.cancelled)
        for state in IssueState:  # cancelled is final
            if state is not IssueState.cancelled:
                assert not transition(session, issue_id, state)
        assert session.get(Issue, issue_id).state == "cancelled"


def test_the_table_is_complete_and_narrowing_must_stay_inside_it():
    assert set(TRANSITIONS) == set(IssueState)
    assert TRANSITIONS[IssueState.sent] == TRANSITIONS[IssueState.cancelled] == frozenset()
    assert sources(IssueState.sending) == ("draft", "scheduled", "paused")
    assert sources(IssueState.sending, only=(IssueState.paused,)) == ("paused",)
    with pytest.raises(ValueError, match="no transition to sending"):
        sources(IssueState.sending, only=(IssueState.sent,))


def test_no_module_but_states_writes_an_issue_state():
    """`update(Issue)` anywhere else would be a state change around the table."""
    writers = [path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
               if "migrations" not in path.parts and re.search(r"update\(\s*Issue\s*\)", path.read_text())]
    assert writers == ["issues/states.py"]
