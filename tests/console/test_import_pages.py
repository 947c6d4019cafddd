"""The console's reader import, as an editor uses it: upload, mapping step, dry run, import, progress;
and what the pages refuse (CSRF, role, oversized or unreadable files, a bad mapping)."""

from __future__ import annotations

import re

from tests.console.conftest import csrf_in
from tests.subscribers.import_helpers import DATA, job, reader, row_counts, run_all

JOB = re.compile(r"/admin/readers/import/(\d+)$")


def upload(client, name: str, data: bytes | None = None, platform: str = "auto", token: str | None = None):
    token = token if token is not None else csrf_in(client.get("/admin/readers/import").text)
    content = data if data is not None else (DATA / name).read_bytes()
    return client.post("/admin/readers/import", data={"csrf_token": token, "platform": platform},
                       files={"file": (name, content, "text/csv")})


def columns_of(html: str) -> dict[str, str]:
    """column_N -> the selected target, as the mapping form shows it."""
    found = {}
    for select in re.finditer(r'<select id="(column_\d+)".*?</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]+)" selected>', select.group(0))
        found[select.group(1)] = chosen.group(1)
    return found


def test_an_editor_uploads_checks_the_mapping_dry_runs_and_imports(console):
    editor = console.login("editor")
    sent = upload(editor, "mailchimp_subscribed.csv")
    assert sent.status_code == 303
    job_id = int(JOB.search(sent.headers["location"]).group(1))
    step = editor.get(sent.headers["location"])
    assert step.status_code == 200 and "From <strong>Mailchimp</strong>" in step.text
    assert 'Column “OPTIN_TIME”' in step.text and "For example: 198.51.100.23" in step.text
    chosen = columns_of(step.text)
    assert chosen["column_0"] == "email" and chosen["column_4"] == "optin_at" and chosen["column_19"] == "ignore"
    before = row_counts(console.engine)
    chosen["column_2"] = "ignore"  # the editor drops the last name
    answer = editor.post(f"/admin/readers/import/{job_id}/dry-run", data={"csrf_token": csrf_in(step.text), **chosen})
    assert answer.status_code == 303
    queued = editor.get(f"/admin/readers/import/{job_id}").text
    assert "Dry run: waiting to start" in queued and "Refresh to see the progress" in queued
    run_all(console.engine)
    summary = editor.get(f"/admin/readers/import/{job_id}").text
    assert "Dry run: finished" in summary and "Would be new</dt><dd>3</dd>" in summary
    assert row_counts(console.engine) == before  # the dry run wrote nothing
    started = editor.post(f"/admin/readers/import/{job_id}/start", data={"csrf_token": csrf_in(summary)})
    assert started.status_code == 303
    run_all(console.engine)
    result = editor.get(f"/admin/readers/import/{job_id}").text
    assert "Import: finished" in result and "New</dt><dd>3</dd>" in result
    assert reader(console.engine, "ada.lindqvist@example.com").name == "Ada"  # last name ignored as chosen
    audit = editor.get("/admin/audit").text
    for action in ("readers.import.upload", "readers.import.dry_run", "readers.import.start",
                   "readers.import.import_done"):
        assert action in audit, action


def test_a_running_import_shows_its_progress(console):
    editor = console.login("owner")
    job_id = int(JOB.search(upload(editor, "ghost.csv").headers["location"]).group(1))
    from sqlalchemy import update

    from newsletter.db import session_scope
    from newsletter.subscribers.import_jobs import ImportJob

    with session_scope(console.engine) as session:
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            state="running", dry_run=False, total_rows=3, processed=1))
    page = editor.get(f"/admin/readers/import/{job_id}").text
    assert "Rows read: 1 of 3" in page and 'value="33"' in page
    assert "Import these rows" not in page  # no second start while it runs
    start = editor.post(f"/admin/readers/import/{job_id}/start", data={"csrf_token": csrf_in(page)})
    assert start.status_code == 409


def test_files_the_upload_cannot_take_get_a_clear_error(console, monkeypatch):
    editor = console.login("editor")
    bad = upload(editor, "sheet.xlsx", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40)
    assert bad.status_code == 422 and "is not a CSV text file" in bad.text
    empty = upload(editor, "empty.csv", b"")
    assert empty.status_code == 422 and "File: is empty" in empty.text
    monkeypatch.setattr("newsletter.web.console.import_pages.MAX_BODY", 2048)
    large = upload(editor, "large.csv", b"email\n" + b"someone@example.com\n" * 400)
    assert large.status_code == 413 and "larger than" in large.text


def test_a_mapping_without_an_email_column_is_refused_on_the_page(console):
    editor = console.login("editor")
    location = upload(editor, "excel_latin1_semicolon.csv").headers["location"]
    step = editor.get(location).text
    assert "read as Windows-1252 (Latin-1), columns separated by semicolons" in step
    assert "Vera Müller" in step  # decoded right, shown as a sample
    answer = editor.post(location + "/dry-run", data={"csrf_token": csrf_in(step), "column_0": "ignore",
                                                     "column_1": "name", "column_2": "topics"})
    assert answer.status_code == 422 and "Mapping: no column is the email address" in answer.text
    assert 'role="alert"' in answer.text


def test_posts_need_the_csrf_token_and_the_role(console):
    editor = console.login("editor")
    assert upload(editor, "ghost.csv", token="forged").status_code == 403
    assert upload(editor, "ghost.csv", token="").status_code == 403  # missing
    location = upload(editor, "ghost.csv").headers["location"]
    job_id = int(JOB.search(location).group(1))
    assert editor.post(location + "/dry-run", data={"csrf_token": "forged", "column_1": "email"}).status_code == 403
    assert editor.post(location + "/start", data={"csrf_token": "forged"}).status_code == 403
    assert editor.post(location + "/start", data={}).status_code == 403
    assert editor.post(location + "/dry-run", data={"column_1": "email"}).status_code == 403
    reviewer = console.login("reviewer")
    token = csrf_in(reviewer.get("/admin").text)
    assert reviewer.post(location + "/start", data={"csrf_token": token}).status_code == 403
    assert upload(reviewer, "ghost.csv", token=token).status_code == 403
    anonymous = console.client()
    for path in ("/admin/readers/import", location + "/dry-run", location + "/start"):
        answer = anonymous.post(path, data={"csrf_token": "x"})
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/login", path
    assert job(console.engine, job_id).state == "draft"  # nothing was queued by any of them
    assert console.login("editor").get("/admin/readers/import/999999").status_code == 404


def test_a_jobs_page_by_role(console):
    """The job page is the authorization matrix's row with an id only a real upload gives."""
    from newsletter.editors.roles import Role

    location = upload(console.login("owner"), "ghost.csv").headers["location"]
    anonymous = console.client().get(location)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login"
    for role in Role:
        expected = 200 if role >= Role.editor else 403
        assert console.login(role.name).get(location).status_code == expected, role.name
