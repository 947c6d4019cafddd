"""A reader's variant keeps the whole issue's numbering where it matters: a tracked comparison link
names the comparison's index in the whole issue (the redirect looks it up in the frozen record)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from newsletter.db import session_scope
from newsletter.issues.drafting import draft_issue
from newsletter.issues.render import compile_issue
from newsletter.issues.variants import VariantKey, positions_of, variant_subject, variant_view
from newsletter.issues.view import build_issue_view


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no SQL of its own: one database is enough
def test_a_variant_links_its_comparisons_by_their_place_in_the_whole_issue(sample_engine, settings):
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    with session_scope(sample_engine) as session:
        view = replace(build_issue_view(session, settings, issue), track_clicks=True)
    assert len(view.comparisons) >= 4
    variant = variant_view(view, VariantKey((1, 3)), None, follow_reader=True)
    assert [c.slug for c in variant.comparisons] == [view.comparisons[1].slug, view.comparisons[3].slug]
    text = "$".join(compile_issue(variant).text.statics)  # $: where the reader's token goes
    assert re.findall(rf"/c/\$/{view.id}/(\d+)", text) == ["1", "3"]
    assert variant.subject == f"{view.comparisons[1].title} + 1 more"
    assert variant_subject(view, (0, 3), True) == (view.subject, view.preheader)  # leads with the lead
    assert variant_subject(view, (3,), False) == (view.subject, view.preheader)  # the editor did not allow it
    assert positions_of(None, 3) == (0, 1, 2) and positions_of(0b101, 3) == (0, 2) and positions_of(0, 3) == (0, 1, 2)
    assert variant_view(view, VariantKey(tuple(range(len(view.comparisons)))), None, True) is view
