"""The console's comparison form: every field round-trips through the form into the import
schema and back, errors sit next to the input they are about, a failed submit loses nothing,
a new comparison never overwrites another, viewers only read, and every change is audited."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from newsletter.content import publishing
from newsletter.db import session_scope
from newsletter.editors.models import AuditEntry
from newsletter.web.console.comparisons_form import input_names
from tests.console.conftest import csrf_in

SLUG = "cursor-vs-windsurf"
LENSES = ("developer_experience", "competition", "thesis", "buyer")


def form_values(html: str) -> dict[str, str]:
    """What a browser would post: every input's value, textarea's text and selected option."""
    values = {}
    for name, value in re.findall(r'<input id="[^"]*" name="([^"]+)" type="[^"]*" value="([^"]*)"', html):
        values[name] = unescape(value)
    for name, text in re.findall(r'<textarea id="[^"]*" name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        values[name] = unescape(text)
    for name, body in re.findall(r'<select id="[^"]*" name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        values[name] = unescape(chosen.group(1)) if chosen else ""
    return values


def stored(engine, slug: str) -> dict | None:
    with session_scope(engine) as session:
        comparison = publishing.find(session, slug)
        return publishing.state(session, comparison) if comparison else None


def audit_entries(engine, action: str) -> list[AuditEntry]:
    with session_scope(engine) as session:
        return list(session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.id)).scalars())


def test_the_form_shows_every_stored_field_and_saving_it_unchanged_changes_nothing(console):
    reviewer = console.login("reviewer")
    before = stored(console.engine, SLUG)
    page = reviewer.get(f"/admin/comparisons/{SLUG}")
    assert page.status_code == 200
    values = form_values(page.text)
    assert set(input_names()) <= set(values)
    assert values["title"] == before["title"] and values["dek"] == before["dek"]
    assert values["published"] == "2026-11-10T10:00"  # 09:00Z shown in the site's zone (Berlin)
    for slot, tool in enumerate(before["tools"]):
        assert all(values[f"tools-{slot}-{name}"] == value for name, value in tool.items())
    answer = reviewer.post(f"/admin/comparisons/{SLUG}", data={**values, "csrf_token": csrf_in(page.text)})
    assert answer.status_code == 303 and answer.headers["location"] == f"/admin/comparisons/{SLUG}?saved=1"
    assert stored(console.engine, SLUG) == before
    assert "Saved." in reviewer.get(answer.headers["location"]).text


def test_every_field_edited_through_the_form_is_stored_and_shown_again(console):
    reviewer = console.login("reviewer")
    page = reviewer.get(f"/admin/comparisons/{SLUG}")
    values = form_values(page.text)
    edited = {name: value for name, value in values.items()}
    edited.update(title="Cursor vs Windsurf, revisited", dek="Which one now?\nA second line.",
                  published="2026-11-11T08:30", category="Coding")
    for slot in range(3):  # a third tool, new, in slot C
        edited.update({f"tools-{slot}-slug": f"tool-{slot}-x", f"tools-{slot}-name": f"Tool {slot} “X”",
                       f"tools-{slot}-category": f"Cat {slot}", f"tools-{slot}-tagline": f"Tag <{slot}>",
                       f"tools-{slot}-description": f"Line one of {slot}.\nLine two & more.",
                       f"tools-{slot}-entry_price": f"${slot}/month"})
        for index, lens in enumerate(LENSES):
            edited.update({f"reviews-{slot}-{lens}-reviewer": f"Rev {slot}{index}",
                           f"reviews-{slot}-{lens}-verdict": "ship" if (slot + index) % 2 else "pass",
                           f"reviews-{slot}-{lens}-quote": f"Quote {slot} {lens}: \"quoted\"."})
    edited["reviews-1-buyer-reviewer"] = edited["reviews-1-buyer-verdict"] = edited["reviews-1-buyer-quote"] = ""
    answer = reviewer.post(f"/admin/comparisons/{SLUG}", data={**edited, "csrf_token": csrf_in(page.text)})
    assert answer.status_code == 303, answer.text
    after = stored(console.engine, SLUG)
    assert after["title"] == "Cursor vs Windsurf, revisited" and after["dek"] == "Which one now?\nA second line."
    assert after["published"] == "2026-11-11T07:30:00+00:00" and after["category"] == "Coding"
    assert [t["slug"] for t in after["tools"]] == ["tool-0-x", "tool-1-x", "tool-2-x"]
    assert after["tools"][2] == {"slug": "tool-2-x", "name": "Tool 2 “X”", "category": "Cat 2", "tagline": "Tag <2>",
                                 "description": "Line one of 2.\nLine two & more.", "entry_price": "$2/month"}
    assert len(after["reviews"]) == 11 and not any(r["tool"] == "tool-1-x" and r["lens"] == "buyer"
                                                   for r in after["reviews"])
    shown = form_values(reviewer.get(f"/admin/comparisons/{SLUG}").text)
    assert {name: shown[name] for name in input_names()} == {name: edited[name] for name in input_names()}
    entry = audit_entries(console.engine, "comparison.update")[-1]
    assert entry.actor == "editor:reviewer@editors.example"
    assert entry.before["title"] == "Cursor vs Windsurf" and entry.after["title"] == after["title"]
    assert [t["slug"] for t in entry.after["tools"]] == ["tool-0-x", "tool-1-x", "tool-2-x"]


def errors_by_input(html: str) -> dict[str, str]:
    """Each input marked invalid, with the text of the error its aria-describedby points to."""
    found = {}
    for name, described in re.findall(r'name="([^"]+)"[^>]*?aria-describedby="([^"]+)" aria-invalid="true"', html):
        ids = described.split()
        assert f"{name}-error" in ids, name
        message = re.search(rf'<p class="error" id="{re.escape(name)}-error">([^<]*)</p>', html)
        assert message, name
        found[name] = unescape(message.group(1))
    return found


def test_errors_sit_next_to_their_inputs_and_the_form_comes_back_filled(console):
    reviewer = console.login("reviewer")
    page = reviewer.get(f"/admin/comparisons/{SLUG}")
    values = form_values(page.text)
    bad = {**values, "title": "  ", "published": "next tuesday", "tools-1-slug": "Not A Slug",
           "tools-0-entry_price": "x" * 61, "reviews-0-thesis-verdict": "", "reviews-0-thesis-reviewer": "Kept Name",
           "tools-2-name": "Half a tool"}
    answer = reviewer.post(f"/admin/comparisons/{SLUG}", data={**bad, "csrf_token": csrf_in(page.text)})
    assert answer.status_code == 422
    errors = errors_by_input(answer.text)
    assert set(errors) >= {"title", "published", "tools-1-slug", "tools-0-entry_price", "reviews-0-thesis-verdict",
                           "tools-2-slug"}, errors
    assert "empty" in errors["title"] and "2026-11-24T09:00" in errors["published"]
    assert "lowercase" in errors["tools-1-slug"] and "60" in errors["tools-0-entry_price"]
    assert "ship" in errors["reviews-0-thesis-verdict"]
    refilled = form_values(answer.text)
    assert {n: refilled[n] for n in input_names()} == {n: bad[n] for n in input_names()}
    assert 'href="#tools-1-slug"' in answer.text  # the summary links to the input
    assert "<details open>" in answer.text  # the half-filled tool C is unfolded
    assert stored(console.engine, SLUG)["title"] == "Cursor vs Windsurf"
    assert audit_entries(console.engine, "comparison.update") == []


def test_a_duplicate_tool_and_too_few_tools_are_named(console):
    reviewer = console.login("reviewer")
    page = reviewer.get(f"/admin/comparisons/{SLUG}")
    values = form_values(page.text)
    twice = reviewer.post(f"/admin/comparisons/{SLUG}", data={**values, "tools-1-slug": values["tools-0-slug"],
                                                               "csrf_token": csrf_in(page.text)})
    assert twice.status_code == 422 and 'id="tools-error">the same tool slug appears twice' in twice.text
    one = {**values, **{f"tools-1-{n}": "" for n in ("slug", "name", "category", "tagline", "description",
                                                     "entry_price")}}
    one.update({name: "" for name in one if name.startswith("reviews-1-")})
    few = reviewer.post(f"/admin/comparisons/{SLUG}", data={**one, "csrf_token": csrf_in(page.text)})
    assert few.status_code == 422 and "at least 2 items" in few.text


NEW = {"slug": "alpha-vs-beta", "title": "Alpha vs Beta", "dek": "Which one?", "published": "2026-11-24T09:00",
       **{f"tools-{s}-{n}": f"{n} {s}" for s in (0, 1) for n in ("name", "category", "tagline", "description",
                                                                    "entry_price")},
       "tools-0-slug": "alpha", "tools-1-slug": "beta"}


def test_a_new_comparison_is_created_and_never_overwrites_another(console):
    reviewer = console.login("reviewer")
    token = csrf_in(reviewer.get("/admin/comparisons/new").text)
    created = reviewer.post("/admin/comparisons/new", data={**NEW, "csrf_token": token})
    assert created.status_code == 303 and created.headers["location"] == "/admin/comparisons/alpha-vs-beta?saved=1"
    assert stored(console.engine, "alpha-vs-beta")["category"] == "category 0"  # tool A's, as in an import
    assert audit_entries(console.engine, "comparison.create")[0].before is None
    taken = reviewer.post("/admin/comparisons/new", data={**NEW, "slug": SLUG, "csrf_token": token})
    assert taken.status_code == 422 and "slug" in errors_by_input(taken.text)
    assert stored(console.engine, SLUG)["title"] == "Cursor vs Windsurf"


def test_an_edit_keeps_its_slug_whatever_the_form_says(console):
    reviewer = console.login("reviewer")
    page = reviewer.get(f"/admin/comparisons/{SLUG}")
    answer = reviewer.post(f"/admin/comparisons/{SLUG}", data={**form_values(page.text), "slug": "other",
                                                               "csrf_token": csrf_in(page.text)})
    assert answer.status_code == 303 and stored(console.engine, "other") is None


def test_a_viewer_reads_but_cannot_edit(console):
    viewer = console.login("viewer")
    page = viewer.get(f"/admin/comparisons/{SLUG}")
    assert page.status_code == 200 and "<fieldset disabled>" in page.text and "Save changes" not in page.text
    assert "Unpublish" not in page.text and "New comparison" not in viewer.get("/admin/comparisons").text
    token = csrf_in(page.text)
    assert viewer.post(f"/admin/comparisons/{SLUG}", data={**form_values(page.text), "title": "X",
                                                           "csrf_token": token}).status_code == 403
    assert viewer.get("/admin/comparisons/new").status_code == 403
    assert stored(console.engine, SLUG)["title"] == "Cursor vs Windsurf"


@pytest.mark.parametrize("path", [f"/admin/comparisons/{SLUG}", "/admin/comparisons/new",
                                  f"/admin/comparisons/{SLUG}/unpublish", f"/admin/comparisons/{SLUG}/publish"])
def test_every_post_needs_the_sessions_csrf_token(console, path):
    reviewer = console.login("reviewer")
    values = form_values(reviewer.get(f"/admin/comparisons/{SLUG}").text)
    before = stored(console.engine, SLUG)
    for token in ("", "forged"):
        data = {**values, "title": "Changed", **NEW, **({"csrf_token": token} if token else {})}
        assert reviewer.post(path, data=data).status_code == 403
    assert stored(console.engine, SLUG) == before and stored(console.engine, "alpha-vs-beta") is None
    anonymous = console.client().post(path, data=values)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login"


def test_an_unknown_comparison_is_a_404_page(console):
    reviewer = console.login("reviewer")
    assert reviewer.get("/admin/comparisons/no-such-thing").status_code == 404
    token = csrf_in(reviewer.get("/admin/comparisons").text)
    assert reviewer.post("/admin/comparisons/no-such-thing", data={**NEW, "csrf_token": token}).status_code == 404
    assert reviewer.post("/admin/comparisons/no-such-thing/unpublish",
                         data={"csrf_token": token}).status_code == 404


@pytest.mark.parametrize("path", [f"/admin/comparisons/{SLUG}", "/admin/comparisons/new",
                                  f"/admin/comparisons/{SLUG}/unpublish", f"/admin/comparisons/{SLUG}/publish"])
def test_a_viewer_with_a_valid_token_is_refused_every_post(console, path):
    viewer = console.login("viewer")
    values = form_values(viewer.get(f"/admin/comparisons/{SLUG}").text)
    token = csrf_in(viewer.get("/admin").text)
    before = stored(console.engine, SLUG)
    answer = viewer.post(path, data={**values, **NEW, "title": "Changed", "csrf_token": token})
    assert answer.status_code == 403 and "Not for your role" in answer.text
    assert stored(console.engine, SLUG) == before and stored(console.engine, "alpha-vs-beta") is None
