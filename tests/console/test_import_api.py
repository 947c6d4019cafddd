"""POST /api/v1/readers/imports and GET /api/v1/readers/imports/{id}: a CSV as the body or as a
multipart file, 202 with a job, the job's progress and counts; errors in the API's shape."""

from __future__ import annotations

import json

from tests.subscribers.import_helpers import DATA, reader, row_counts, run_all

CSV = {"Content-Type": "text/csv"}


def post(console, body: bytes, scope: str = "readers", headers: dict | None = None, **params):
    return console.client().post("/api/v1/readers/imports", content=body, params=params,
                                 headers={**console.bearer(scope), **(headers or CSV)})


def test_a_csv_body_starts_a_job_that_can_be_followed(console):
    answer = post(console, (DATA / "substack.csv").read_bytes())
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert answer.headers["location"] == f"/api/v1/readers/imports/{started['id']}"
    assert (started["state"], started["platform"], started["dry_run"]) == ("queued", "substack", False)
    assert started["mapping"]["email_disabled"] == "email_disabled"
    run_all(console.engine)
    done = console.client().get(answer.headers["location"], headers=console.bearer("read")).json()
    assert done["state"] == "done" and done["total_rows"] == done["processed"] == 3
    assert done["counts"] == {"new": 3, "updated": 0, "unchanged": 0, "suppressed": 0, "refused": 0}
    assert reader(console.engine, "ivan.petrov@example.org").status == "unsubscribed"


def test_a_multipart_dry_run_with_a_mapping_writes_nothing(console):
    before = row_counts(console.engine)
    answer = console.client().post(
        "/api/v1/readers/imports", headers=console.bearer("all"),
        params={"dry_run": "true", "platform": "csv", "mapping": json.dumps({"E-mail": "email", "Name": "name"})},
        files={"file": ("readers.csv", (DATA / "excel_latin1_semicolon.csv").read_bytes(), "text/csv")})
    assert answer.status_code == 202, answer.text
    assert answer.json()["mapping"] == {"E-mail": "email", "Name": "name", "Topics": "ignore"}
    assert answer.json()["encoding"] == "Windows-1252 (Latin-1)"
    run_all(console.engine)
    done = console.client().get(f"/api/v1/readers/imports/{answer.json()['id']}", headers=console.bearer("read"))
    assert done.json()["counts"]["new"] == 2 and done.json()["message"].startswith("nothing was written")
    assert row_counts(console.engine) == before


def test_bad_requests_name_the_field(console):
    def error_of(answer):
        return answer.status_code, answer.json()["error"]["code"], answer.json()["error"]["fields"]

    assert error_of(post(console, b"")) == (422, "invalid_request", {"file": "is empty"})
    assert error_of(post(console, b"a,b\n1,2\n", platform="ghost"))[2] == {
        "mapping": "no column is the email address"}
    assert error_of(post(console, b"email\nx@example.com\n", mapping="[1]"))[2]["mapping"].startswith("must be")
    assert error_of(post(console, b"email\n", headers={"Content-Type": "application/json"}))[:2] == (
        415, "unsupported_media_type")
    assert error_of(post(console, b"email\n", platform="myspace"))[0] == 422
    assert error_of(console.client().get("/api/v1/readers/imports/424242", headers=console.bearer("read"))) == (
        404, "not_found", {"id": "unknown"})
    assert row_counts(console.engine)["Subscriber"] == 0


def test_each_start_is_in_the_audit_log(console):
    job_id = post(console, (DATA / "ghost.csv").read_bytes()).json()["id"]
    run_all(console.engine)
    audit = console.login("viewer").get("/admin/audit").text
    assert f"import_job:{job_id}" in audit and "token:token-readers" in audit
    assert "readers.import.import_done" in audit
