"""The readers API beyond the search (api.py): one reader's record with ledger and consent
history, unsubscribe / resubscribe (a fresh confirmation only), forget, the streaming export
and the suppression list.

Writes need the `readers` scope (ManagingReaders) and are audit-logged in the transaction of
the change (subscribers/reader_actions.py); every GET needs `read`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

from fastapi import Path, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from newsletter.db import session_scope
from newsletter.reports.reader_record import reader_record
from newsletter.editors import reader_actions
from newsletter.subscribers import search
from newsletter.subscribers.exporting import csv_chunks
from newsletter.web.console.api_base import Cursor, Limit_, ManagingReaders, Reading, api_router, decode_cursor, \
    encode_cursor, error
from newsletter.web.console.deps import Console, ConsoleContext
from newsletter.web.console.schemas import ErrorOut
from newsletter.web.console.schemas_readers import ForgetOut, ReaderRecordOut, StatusIn, StatusOut, \
    StatusWanted, SuppressionOut, SuppressionPage

router = api_router()

ReaderId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The reader's id")]
NOT_FOUND = {404: {"model": ErrorOut, "description": "No such reader (or forgotten)"}}
EXPORT_COLUMNS = ["id", "email", "name", "status", "topics", "created_at", "confirmed_at", "unsubscribed_at",
                  "paused_until"]


class ExportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


def no_reader(reader_id: int) -> JSONResponse:
    return error(404, "not_found", f"There is no reader {reader_id} (or they were forgotten).",
                 {"reader_id": "no such reader"})


@router.get("/readers/export", response_class=StreamingResponse, summary="Every reader, streamed",
            responses={200: {"description": "One reader per row (CSV) or line (NDJSON), by address",
                             "content": {"text/csv": {}, "application/x-ndjson": {}}}})
def export_readers(ctx: Console, _actor: Reading, format: ExportFormat = ExportFormat.csv) -> StreamingResponse:
    """Streams every reader once, a keyset page at a time: memory stays flat however many there are."""
    rows = search.walk_readers(ctx.engine)
    if format == ExportFormat.ndjson:
        body, media = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "application/x-ndjson"
    else:
        body, media = csv_chunks(rows, EXPORT_COLUMNS, flush=64_000), "text/csv; charset=utf-8"
    name = f"readers.{format.value}"
    return StreamingResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "no-store"})


@router.get("/readers/{reader_id}", response_model=ReaderRecordOut, responses=NOT_FOUND)
def get_reader(ctx: Console, _actor: Reading, reader_id: ReaderId) -> Response:
    """A reader's record: status, topics, consent history, every issue sent with its delivery
    state and provider id, and their votes."""
    with session_scope(ctx.engine) as session:
        record = reader_record(session, reader_id)
        if record is None:
            return no_reader(reader_id)
        out = ReaderRecordOut.model_validate({
            **{key: getattr(record.reader, key) for key in ReaderRecordOut.model_fields
               if hasattr(record.reader, key)},
            "topics": record.topics, "suppressed": record.suppressed,
            "consent": [vars(row) for row in record.consent], "ledger": [vars(row) for row in record.ledger],
            "votes": [vars(row) for row in record.votes]})
    return JSONResponse(out.model_dump(mode="json"))


@router.post("/readers/{reader_id}/status", response_model=StatusOut,
             responses={**NOT_FOUND, 202: {"model": StatusOut, "description": "A fresh confirmation is queued"},
                        409: {"model": ErrorOut, "description": "Not possible for this reader now"}})
def set_status(ctx: Console, actor: ManagingReaders, reader_id: ReaderId, body: StatusIn) -> Response:
    """"unsubscribed": as the reader's own one-click unsubscribe. "active": a fresh confirmation
    mail only (double opt-in); the reader stays as they are until they click it."""
    try:
        with session_scope(ctx.engine) as session:
            if body.status == StatusWanted.unsubscribed:
                changed = reader_actions.unsubscribe_reader(session, reader_id, actor, ctx.web.clock())
            else:
                reader_actions.request_resubscription(session, ctx.settings.web, reader_id, actor, ctx.web.clock())
                changed = False
            status = reader_actions.state_of(reader_actions.reader_in(session, reader_id))["status"]
    except reader_actions.NoSuchReader:
        return no_reader(reader_id)
    except reader_actions.Refused as exc:
        return error(409, "not_possible", str(exc).split(": ", 1)[-1], {"status": str(exc).split(": ", 1)[-1]})
    queued = body.status == StatusWanted.active
    if queued:
        ctx.web.on_queued()
    return JSONResponse(StatusOut(id=reader_id, status=status, changed=changed, confirmation_queued=queued)
                        .model_dump(), 202 if queued else 200)


@router.post("/readers/{reader_id}/forget", response_model=ForgetOut, responses=NOT_FOUND)
def forget_reader(ctx: Console, actor: ManagingReaders, reader_id: ReaderId) -> Response:
    """The right to erasure: the reader, their consent history, deliveries, votes and mails go;
    only a hash of the address stays on the suppression list, so they are never mailed again."""
    try:
        with session_scope(ctx.engine) as session:
            forgotten = reader_actions.forget_reader(session, reader_id, actor)
    except reader_actions.NoSuchReader:
        return no_reader(reader_id)
    return JSONResponse(ForgetOut(erased=forgotten.counts).model_dump())


@router.get("/suppressions", response_model=SuppressionPage)
def list_suppressions(ctx: Console, _actor: Reading, cursor: Cursor = "", limit: Limit_ = 50,
                      q: Annotated[str, Query(max_length=254, pattern=r"^[^\x00-\x1f\x7f]*$",
                                             description="Address prefix, or a whole address")] = "") -> SuppressionPage:
    """Addresses that get no mail (bounces, complaints, forgotten people as hashes), by address."""
    return SuppressionPage(**suppression_page(ctx, q, cursor, limit))


def suppression_page(ctx: ConsoleContext, q: str, cursor: str, limit: int) -> dict:
    after = str(decode_cursor(cursor, "email", str)) if cursor else ""
    with session_scope(ctx.engine) as session:
        found = search.search_suppressions(session, q, after, limit)
        items = [SuppressionOut.model_validate(row, from_attributes=True) for row in found.rows]
    return {"items": items, "next_cursor": encode_cursor({"email": found.next_after}) if found.next_after else None}
