"""Schemathesis (issue 5.8): requests generated from the app's OpenAPI schema never get a 5xx.

Runs against the ASGI app in process (no server, no sockets) on SQLite and PostgreSQL, with a
bounded number of examples per operation so the whole run stays well under half a minute.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from newsletter.config import load_settings
from newsletter.db import make_engine
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET, write_config
from tests.db_templates import migrate_fresh

EXAMPLES = 25


@pytest.fixture
def web_app(tmp_path, db_url):
    # In-process requests carry Host "testserver" (schemathesis' ASGI client): allow it like an operator would.
    config = load_settings(write_config(tmp_path, db_url, extra='[web]\nallowed_hosts = ["testserver"]\n'))
    engine = make_engine(config.database.url)
    migrate_fresh(engine)
    from newsletter.content.importer import import_files, sample_files

    import_files(engine, sample_files())
    yield create_app(config, engine=engine, secret=TEST_SECRET, with_sender=False)
    engine.dispose()


def test_the_schema_describes_the_form_fields(web_app):
    spec = web_app.openapi()
    assert spec["paths"]["/subscribe"]["post"]["requestBody"]["content"].keys() == {"application/x-www-form-urlencoded"}
    for path, field in (("/subscribe", "email"), ("/subscribe", "topics"), ("/unsubscribe/{token}", "List-Unsubscribe")):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
        schema = body["schema"]  # inline (web/deps.py form_schema) or a component
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        assert field in schema["properties"]
    assert web_app.docs_url is None and web_app.redoc_url is None


def test_no_server_errors(web_app):
    # The schemathesis pytest plugin (from_fixture/parametrize) does not work with pytest 9, so
    # every operation gets its own hypothesis run here; a failure names the operation.
    schema = schemathesis.openapi.from_asgi("/openapi.json", web_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /subscribe", "POST /unsubscribe/{token}",
                                                "POST /preferences/{token}", "POST /confirm/{token}"}
    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def no_5xx(case):
            case.call_and_validate(checks=[not_a_server_error])

        try:
            no_5xx()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc


def test_declared_form_fields_still_refuse_files_and_other_bodies(live):
    upload = live.http.post(live.url + "/subscribe", files={"email": ("a.txt", b"x@example.com")})
    assert upload.status_code in (400, 422) and ("<form" in upload.text or "not valid" in upload.text)
    as_json = live.http.post(live.url + "/subscribe", json={"email": "x@example.com"})
    assert as_json.status_code in (400, 422)
