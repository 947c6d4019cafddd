"""Schemathesis over /api/v1 with a token of scope `all`: no generated request gets a 5xx,
and every answer matches the documented schema's status codes. SQLite and PostgreSQL."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

EXAMPLES = 25
# Without a token every route but the public ones answers 401 before it reads a parameter or a body
# (the bearer dependency runs first), so more generated requests only repeat that one answer: a
# route that forgets its auth fails on the first example. Public routes get the full run either way.
ANONYMOUS_EXAMPLES = 3


def test_no_server_errors_with_a_token(console):
    schema = schemathesis.openapi.from_asgi("/openapi.json", console.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    api = [op for op in operations if op.path.startswith("/api/v1/")]
    issue = "/api/v1/issues/{issue_id}"
    issue_routes = {f"GET {issue}", "POST /api/v1/issues", f"PATCH {issue}", f"PUT {issue}/comparisons",
                    f"GET {issue}/preview.html", f"GET {issue}/preview.txt", f"GET {issue}/checks",
                    f"GET {issue}/status"} | {f"POST {issue}/{action}" for action in (
                        "test", "schedule", "unschedule", "send", "pause", "resume", "cancel")}
    comparison = "/api/v1/comparisons/{slug}"
    comparison_routes = {"GET /api/v1/comparisons", f"GET {comparison}", f"GET {comparison}/community",
                         f"POST {comparison}/unpublish", f"POST {comparison}/publish"}
    # Every API route is exercised; these fixed interfaces (and those of each area) must be among them.
    assert {op.label for op in api} >= {"GET /api/v1/issues", "GET /api/v1/readers", "GET /api/v1/audit",
                                        "PUT /api/v1/comparisons/{slug}", "POST /api/v1/public/subscriptions",
                                        "GET /api/v1/readers/{reader_id}", "POST /api/v1/readers/{reader_id}/status",
                                        "POST /api/v1/readers/{reader_id}/forget", "GET /api/v1/readers/export",
                                        "GET /api/v1/suppressions", "GET /api/v1/stats",
                                        "GET /api/v1/stats/issues/{issue_id}", "GET /api/v1/stats/comparisons",
                                        "POST /api/v1/readers/imports", "GET /api/v1/readers/imports/{job_id}",
                                        *issue_routes, *comparison_routes}
    spec = console.app.openapi()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert not any(path.startswith("/admin") for path in spec["paths"])  # pages are not API
    for headers in (console.bearer("all"), {}):
        for operation in api:
            public = "/public/" in operation.path
            examples = EXAMPLES if headers or public else ANONYMOUS_EXAMPLES

            @given(operation.as_strategy())
            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
            def no_5xx(case):
                response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
                if not headers and not public:
                    assert response.status_code == 401, (operation.label, response.status_code)

            try:
                no_5xx()
            except Exception as exc:
                raise AssertionError(f"{operation.label} ({'token' if headers else 'anonymous'}): {exc}") from exc
