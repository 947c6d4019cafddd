"""Idempotency-Key on API writes: one ASGI middleware over every POST, PUT, PATCH and DELETE
under /api/v1 (the public routes aside), so every API module has it without a line of its own.

With the header, the first answer to (token, key) is kept for 24 hours: the same key with the
same request (method, path, query, body) gets that answer again, with `Idempotent-Replayed:
true`, and the write does not run twice; the same key with another request answers 422
`idempotency_key_reused`; a retry while the first is still running answers 409
`idempotency_key_in_progress`. Answers that mean the write did not run (401, 403, 429, 5xx)
are not kept, so a retry runs it. Without the header nothing changes. The store is
newsletter/editors/idempotency.py; database calls run in the thread pool.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.editors import idempotency
from newsletter.editors.sessions import hash_secret
from newsletter.web.console.api_base import error

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_KEPT = frozenset({401, 403, 429})  # the write did not run: a retry should run it
MAX_KEPT_BODY = 1_000_000  # a larger answer is not kept (its retry runs again)
HEADER = "Idempotency-Key"


def applies(scope: Scope) -> bool:
    path = scope.get("path", "")
    return (scope["type"] == "http" and scope.get("method") in WRITES and path.startswith("/api/v1/")
            and not path.startswith("/api/v1/public/"))


def bad_key(key: str) -> str | None:
    if not 1 <= len(key) <= idempotency.MAX_KEY:
        return f"1 to {idempotency.MAX_KEY} characters"
    if not all(33 <= ord(char) <= 126 for char in key):
        return "printable ASCII characters without spaces (a UUID is a good key)"
    return None


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not applies(scope):  # lifespan and websocket scopes have no headers: test the type first
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        key = headers.get(HEADER.lower())
        scheme, _, raw = headers.get("authorization", "").partition(" ")
        if key is None or scheme.lower() != "bearer" or not raw.strip():
            return await self.app(scope, receive, send)  # no key, or no token: the route answers
        problem = bad_key(key)
        if problem:
            return await error(422, "invalid_request", f"The {HEADER} header is not valid.",
                               {HEADER: problem})(scope, receive, send)
        body = await read_body(receive)
        digest = idempotency.request_hash(scope["method"], scope["path"],
                                          scope.get("query_string", b"").decode("latin-1"), body)
        engine, token = scope["app"].state.console.engine, hash_secret(raw.strip())
        seen = await run_in_threadpool(idempotency.lookup, engine, token, key)
        row_id = None if seen else await run_in_threadpool(idempotency.begin, engine, token, key, digest)
        if seen is not None and seen.status is not None and seen.request_hash != digest:
            answer = error(422, "idempotency_key_reused", f"This {HEADER} was used for a different request "
                           "in the last 24 hours; use a new key for a new request.", {HEADER: "used for another request"})
        elif seen is not None and seen.status is not None:
            answer = replay(seen)
        elif row_id is None:  # held by a request still running (which may be another body: told after)
            answer = error(409, "idempotency_key_in_progress", f"A request with this {HEADER} is still running; "
                           "retry in a few seconds.", {HEADER: "in progress"}, headers={"Retry-After": "2"})
        else:
            return await self.first(scope, body, receive, send, engine, row_id)
        await answer(scope, receive, send)

    async def first(self, scope: Scope, body: bytes, receive: Receive, send: Send, engine, row_id: int) -> None:
        """Run the request once, passing its answer on as it goes, and keep it if it counts."""
        answered: dict = {"status": 500, "type": "", "chunks": [], "size": 0}
        delivered = False

        async def receive_once() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # the body was read already: what remains is the disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                answered["type"] = Headers(raw=message.get("headers", [])).get("content-type", "")
            elif message["type"] == "http.response.body":
                answered["size"] += len(message.get("body", b""))
                if answered["size"] <= MAX_KEPT_BODY:
                    answered["chunks"].append(message.get("body", b""))
            await send(message)

        kept = False
        try:
            await self.app(scope, receive_once, capture)
            status = answered["status"]
            if status < 500 and status not in NOT_KEPT and answered["size"] <= MAX_KEPT_BODY:
                text = b"".join(answered["chunks"]).decode("utf-8", "replace")
                await run_in_threadpool(idempotency.finish, engine, row_id, status, text, answered["type"])
                kept = True
        finally:
            if not kept:
                await run_in_threadpool(idempotency.release, engine, row_id)


def replay(seen: idempotency.Seen) -> Response:
    return Response(seen.body or "", seen.status, media_type=seen.content_type or None,
                    headers={"Idempotent-Replayed": "true", "Cache-Control": "no-store"})
