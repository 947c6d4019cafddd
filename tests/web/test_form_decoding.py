"""The hot routes split urlencoded forms with the standard library (web/deps.py `form_data`, issue 18):
every value must come out as Starlette's own form parser gives it, and a flood of fields is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.requests import Request

from newsletter.subscribers.service import InvalidInput
from newsletter.web.deps import MAX_FIELDS, form_data

BODIES = [
    b"email=a%40example.com&name=&form_token=x.y-z_&website=",
    b"name=Ren%C3%A9+M%C3%BCller&topics=Developer+Tools&topics=Books",  # UTF-8 escapes, +, repeated field
    b"name=Ren\xc3\xa9&plus=%2B1&pct=100%25&amp=a%26b",  # raw bytes (latin-1, as Starlette), escaped + % &
    b"List-Unsubscribe=One-Click",
    b"flag&empty=&=novalue&bad=%zz&semi=a;b",  # no "=", empty name, a broken escape, a semicolon
    b"",
]


def request_for(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> Request:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/subscribe", "headers": [(b"content-type", content_type.encode())],
             "query_string": b""}
    return Request(scope, receive)


async def starlette_reads(body: bytes) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for key, value in (await request_for(body).form()).multi_items():
        data.setdefault(key, []).append(value)
    return data


def run(make: Callable[[], Awaitable]):
    """The coroutine `make` gives, run on a loop of its own thread: in a test process another
    test's Playwright (its sync API) may keep an event loop running on this thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@pytest.mark.parametrize("body", BODIES)
def test_a_urlencoded_form_reads_as_starlette_reads_it(body):
    assert run(lambda: form_data(request_for(body))) == run(lambda: starlette_reads(body))


def test_a_form_of_too_many_fields_is_refused():
    with pytest.raises(InvalidInput):
        run(lambda: form_data(request_for(b"&".join(b"f%d=1" % n for n in range(MAX_FIELDS + 1)))))
