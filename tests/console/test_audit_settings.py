"""The audit log shows what an edit changed, field by field, pages and filters; the owners'
settings page shows the configuration but never a secret."""

from __future__ import annotations

import copy

from hypothesis import given, strategies as st
from pydantic import SecretStr

from newsletter.editors.audit import changes
from newsletter.web.console.settings_page import rows
from tests.console.test_authorization import SAMPLE_COMPARISON

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                        max_size=3), max_leaves=8)


@given(json_values)
def test_an_unchanged_record_has_no_changes(value):
    assert changes(value, copy.deepcopy(value)) == []


@given(st.dictionaries(st.text(min_size=1, max_size=4), st.integers(), min_size=1), st.data())
def test_one_changed_field_is_named_with_its_values(record, data):
    key = data.draw(st.sampled_from(sorted(record)))
    edited = {**record, key: record[key] + 1}
    assert [(c.field, c.before, c.after) for c in changes(record, edited)] == [(key, record[key], record[key] + 1)]


def test_nested_paths_name_the_list_position():
    before = {"tools": [{"tagline": "Old"}, {"tagline": "Same"}]}
    after = {"tools": [{"tagline": "New"}, {"tagline": "Same"}]}
    assert [(c.field, c.before, c.after) for c in changes(before, after)] == [("tools.0.tagline", "Old", "New")]


def _edit_twice(console):
    client = console.client()
    assert client.put("/api/v1/comparisons/alpha-vs-beta", json=SAMPLE_COMPARISON,
                      headers=console.bearer("all")).status_code in (200, 201)
    edited = {**SAMPLE_COMPARISON, "title": "Alpha vs Beta, revisited"}
    assert client.put("/api/v1/comparisons/alpha-vs-beta", json=edited,
                      headers=console.bearer("comparisons")).status_code == 200


def test_the_console_shows_the_fields_an_edit_changed(console):
    _edit_twice(console)
    html = console.login("viewer").get("/admin/audit").text
    assert "token:token-comparisons" in html and "comparison.put comparison:alpha-vs-beta" in html
    assert "<dt>title</dt>" in html and "<del>Alpha vs Beta</del> → <ins>Alpha vs Beta, revisited</ins>" in html
    narrowed = console.login("viewer").get("/admin/audit", params={"actor": "token-comparisons"}).text
    assert "token:token-comparisons" in narrowed and "token:token-all" not in narrowed
    assert "Nothing matches" in console.login("viewer").get("/admin/audit", params={"action": "nothing."}).text


def test_the_api_pages_the_log_newest_first_and_each_entry_once(console):
    _edit_twice(console)
    seen, before = [], None
    while True:
        params = {"limit": 2, **({"before": before} if before else {})}
        body = console.client().get("/api/v1/audit", params=params, headers=console.bearer("read")).json()
        seen += [item["id"] for item in body["items"]]
        before = body["next_before"]
        if before is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) >= 2
    newest = console.client().get("/api/v1/audit", headers=console.bearer("read")).json()["items"][0]
    assert newest["action"] == "comparison.put"
    assert {"field": "title", "before": "Alpha vs Beta", "after": "Alpha vs Beta, revisited"} in newest["changes"]


def test_a_control_character_in_a_filter_is_refused_cleanly(console):
    answer = console.client().get("/api/v1/audit", params={"actor": "a\x00b"}, headers=console.bearer("read"))
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_request"


def test_settings_show_values_but_never_secrets(console):
    secret = "hunter2-do-not-show"
    mail = console.settings.mail
    smtp = mail.smtp.model_copy(update={"password": SecretStr(secret)})
    database = console.settings.database.model_copy(update={"url": f"postgresql://wv:{secret}@db.example/wv"})
    console.app.state.console.settings = console.settings.model_copy(
        update={"mail": mail.model_copy(update={"smtp": smtp}), "database": database})
    html = console.login("owner").get("/admin/settings").text
    assert secret not in html
    assert "<code>mail.smtp.password</code></th><td>set</td>" in html
    assert "postgresql://wv:***@db.example/wv" in html
    assert "<code>site.name</code></th><td>Weekly Verdicts</td>" in html


def test_every_setting_has_a_row():
    from newsletter.config import Settings

    keys = [key for key, _ in rows(Settings())]
    assert "mail.transport" in keys and "delivery.batch_size" in keys and len(keys) == len(set(keys)) > 40


def test_a_created_record_lists_each_field():
    assert [(c.field, c.before, c.after) for c in changes(None, {"role": "owner", "email": "a@b.example"})] == [
        ("email", None, "a@b.example"), ("role", None, "owner")]


def test_a_page_bound_beyond_the_id_column_is_refused_not_a_server_error(console):
    # PostgreSQL's INTEGER ends at 2**31 - 1: a larger `before` must be a 422, never a 500.
    answer = console.client().get("/api/v1/audit", params={"before": 2**31}, headers=console.bearer("read"))
    assert answer.status_code == 422 and answer.json()["error"]["fields"].get("before")
    assert console.client().get("/api/v1/audit", params={"before": 2**31 - 1},
                                headers=console.bearer("read")).status_code == 200
