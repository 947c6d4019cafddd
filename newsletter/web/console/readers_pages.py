"""The console's reader pages: search (/admin/readers), one reader's record with its actions,
the forget confirmation, and the suppression list (/admin/suppressions).

Viewers read; editors and owners act (ReaderManager). Every action is a POST form with the
session's CSRF token, answered by a redirect back to the reader (so a reload repeats nothing);
forgetting asks first on a page of its own, because it cannot be undone.
"""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.editors.roles import Permission, role_allows
from newsletter.editors.sessions import Signed
from newsletter.reports.reader_record import reader_record
from newsletter.editors import reader_actions
from newsletter.subscribers import search
from newsletter.web.console.deps import Console, ConsoleContext
from newsletter.web.console.views import Reader, ReaderManager, check_csrf, console_router, message, page

router = console_router()

PAGE_SIZE = 50
SearchText = Annotated[str, Query(max_length=254, pattern=r"^[^\x00-\x1f\x7f]*$")]
ReaderId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CsrfToken = Annotated[str, Form(max_length=200)]
# What a redirect after an action says on the reader's page (a fixed text per key, never echoed input).
NOTICES = {"unsubscribed": "Unsubscribed. No more issues go to this reader.",
           "unchanged": "Nothing changed: the reader was not subscribed.",
           "confirmation": "A fresh confirmation mail is queued. The reader becomes active only when they click it."}


def actor_of(me: Signed) -> audit.Actor:
    return audit.Actor(f"editor:{me.editor.email}", me.editor.id)


def may_act(me: Signed) -> bool:
    return role_allows(me.editor.role, Permission.manage_readers)


@router.get("/readers", response_class=HTMLResponse)
def readers(ctx: Console, me: Reader, q: SearchText = "", after: SearchText = "", contains: bool = False) -> Response:
    """Search by address or name prefix (or name substring), a keyset page at a time."""
    with session_scope(ctx.engine) as session:
        found = search.search_readers(session, q, after, PAGE_SIZE, name_contains=contains)
    return page(ctx, "readers.html", me=me, title="Readers", current="readers", q=q, contains=contains,
                after=after, rows=found.rows, first=_query(q=q, contains=contains),
                next=_query(q=q, contains=contains, after=found.next_after) if found.next_after else "")


def _query(**values) -> str:
    """A page's query string, without the empty values (an empty `contains` is not a boolean)."""
    return urlencode({key: "true" if value is True else value for key, value in values.items() if value})


def reader_page(ctx: ConsoleContext, me: Signed, reader_id: int, status: int = 200, notice: str = "",
                error: str = "") -> Response:
    with session_scope(ctx.engine) as session:
        record = reader_record(session, reader_id)
        if record is None:
            return message(ctx, "No such reader", f"There is no reader {reader_id}; they may have been forgotten.",
                           404, [("Search readers", "/admin/readers")])
        return page(ctx, "reader.html", status, me=me, title=record.reader.email, current="readers",
                    record=record, may_act=may_act(me), notice=notice, error=error)


@router.get("/readers/{reader_id}", response_class=HTMLResponse)
def reader(ctx: Console, me: Reader, reader_id: ReaderId,
           done: Annotated[str, Query(max_length=20)] = "") -> Response:
    return reader_page(ctx, me, reader_id, notice=NOTICES.get(done, ""))


def _back(reader_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/readers/{reader_id}?done={done}", status_code=303)


@router.post("/readers/{reader_id}/unsubscribe", response_class=HTMLResponse)
def unsubscribe(ctx: Console, me: ReaderManager, reader_id: ReaderId, csrf_token: CsrfToken = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            changed = reader_actions.unsubscribe_reader(session, reader_id, actor_of(me), ctx.web.clock())
    except reader_actions.NoSuchReader:
        return reader_page(ctx, me, reader_id)
    return _back(reader_id, "unsubscribed" if changed else "unchanged")


@router.post("/readers/{reader_id}/resubscribe", response_class=HTMLResponse)
def resubscribe(ctx: Console, me: ReaderManager, reader_id: ReaderId, csrf_token: CsrfToken = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            reader_actions.request_resubscription(session, ctx.settings.web, reader_id, actor_of(me), ctx.web.clock())
    except reader_actions.NoSuchReader:
        return reader_page(ctx, me, reader_id)
    except reader_actions.Refused as exc:
        return reader_page(ctx, me, reader_id, 409, error=str(exc).split(": ", 1)[-1].capitalize() + ".")
    ctx.web.on_queued()
    return _back(reader_id, "confirmation")


@router.get("/readers/{reader_id}/forget", response_class=HTMLResponse)
def forget_form(ctx: Console, me: ReaderManager, reader_id: ReaderId) -> Response:
    """Asks before erasing: the page names what goes and that it cannot be undone."""
    with session_scope(ctx.engine) as session:
        record = reader_record(session, reader_id)
        if record is None:
            return reader_page(ctx, me, reader_id)
        return page(ctx, "reader_forget.html", me=me, title="Forget this reader?", current="readers",
                    record=record)


@router.post("/readers/{reader_id}/forget", response_class=HTMLResponse)
def forget(ctx: Console, me: ReaderManager, reader_id: ReaderId, csrf_token: CsrfToken = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            forgotten = reader_actions.forget_reader(session, reader_id, actor_of(me))
    except reader_actions.NoSuchReader:
        return reader_page(ctx, me, reader_id)
    erased = ", ".join(forgotten.lines())
    return message(ctx, "Forgotten", f"Reader {reader_id} is erased ({erased}). Only a hash of the address stays on "
                   "the suppression list, so they are never mailed again.", 200, [("Search readers", "/admin/readers")])


@router.get("/suppressions", response_class=HTMLResponse)
def suppressions(ctx: Console, me: Reader, q: SearchText = "", after: SearchText = "") -> Response:
    with session_scope(ctx.engine) as session:
        found = search.search_suppressions(session, q, after, PAGE_SIZE)
    return page(ctx, "suppressions.html", me=me, title="Suppressions", current="readers", q=q, after=after,
                rows=found.rows, first=_query(q=q),
                next=_query(q=q, after=found.next_after) if found.next_after else "")
