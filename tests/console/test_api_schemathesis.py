"""Schemathesis over /api/v1 with a token of scope `all`: no generated request gets a 5xx,
and every answer matches the documented schema's status codes. SQLite and PostgreSQL."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

EXAMPLES = 40


def test_no_server_errors_with_a_token(console):
    schema = schemathesis.openapi.from_asgi("/openapi.json", console.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    api = [op for op in operations if op.path.startswith("/api/v1/")]
    assert {op.label for op in api} == {"GET /api/v1/issues", "GET /api/v1/readers",
                                        "PUT /api/v1/comparisons/{slug}", "POST /api/v1/public/subscriptions",
                                        "POST /api/v1/readers/imports", "GET /api/v1/readers/imports/{job_id}"}
    spec = console.app.openapi()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert not any(path.startswith("/admin") for path in spec["paths"])  # pages are not API
    for headers in (console.bearer("all"), {}):
        for operation in api:

            @given(operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
            def no_5xx(case):
                response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
                if not headers and "/public/" not in operation.path:
                    assert response.status_code == 401, (operation.label, response.status_code)

            try:
                no_5xx()
            except Exception as exc:
                raise AssertionError(f"{operation.label} ({'token' if headers else 'anonymous'}): {exc}") from exc
