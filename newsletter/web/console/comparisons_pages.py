"""The console's comparisons: the list (search and filters in a GET form, keyset pages), the
new and edit form (the import schema, errors next to their inputs, nothing lost on a failed
submit), and unpublish / republish.

Viewers see everything read-only; reviewers and up edit. Every POST checks the session's
CSRF token and writes the audit log, with before and after, in the change's transaction.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.content import publishing
from newsletter.content.models import LENS_LABELS, Lens
from newsletter.content.publishing import TOOL_FIELDS
from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.editors.roles import Permission, role_allows
from newsletter.editors.sessions import Signed
from newsletter.reports import comparisons as catalogue
from newsletter.web.console import comparisons_form as form
from newsletter.web.console.comparisons_common import FILTER_NAMES, console_key, cursor_for, origin_of, \
    parse_filters, publish_audited
from newsletter.web.console.deps import Console, ConsoleContext
from newsletter.web.console.views import Reader, Reviewer, check_csrf, console_router, message, page

router = console_router()
SlugPath = Annotated[str, Path(max_length=160)]
PAGE_SIZE = 50
TOOL_LABELS = {"slug": "Slug", "name": "Name", "category": "Category", "tagline": "Tagline",
               "description": "Description", "entry_price": "Entry price"}


def actor_of(me: Signed) -> audit.Actor:
    return audit.Actor(f"editor:{me.editor.email}", me.editor.id)


async def posted(request: Request) -> dict[str, str]:
    """The posted form's text fields (the handlers stay synchronous: they talk to the database)."""
    data = await request.form()
    return {key: value for key, value in data.items() if isinstance(value, str)}


Posted = Annotated[dict[str, str], Depends(posted)]


@router.get("/comparisons", response_class=HTMLResponse)
def comparisons_list(request: Request, ctx: Console, me: Reader) -> HTMLResponse:
    """The list: filters from the query string; a bad filter is named next to its input."""
    raw = {name: request.query_params.get(name, "")[:300] for name in FILTER_NAMES}
    filters, errors = parse_filters(raw)
    after = console_key(request.query_params.get("cursor", "")[:600])
    with session_scope(ctx.engine) as session:
        rows, next_key = catalogue.search(session, filters, ctx.settings.site.zone, after, PAGE_SIZE)
        choices = filter_choices(session)
    next_cursor = cursor_for(next_key)
    next_query = {**{k: v for k, v in raw.items() if v}, "cursor": next_cursor} if next_cursor else None
    return page(ctx, "comparisons.html", me=me, title="Comparisons", current="comparisons", rows=rows,
                filters=raw, errors=errors, next_query=next_query, first_page=after is None,
                filters_query=urlencode({k: v for k, v in raw.items() if v}),
                more_open=any(raw[k] or k in errors for k in FILTER_NAMES if k not in ("q", "status")),
                can_edit=role_allows(me.editor.role, Permission.edit_comparisons), zone=ctx.settings.site.zone,
                **choices)


def filter_choices(session) -> dict[str, list[tuple[str, str]]]:
    """The options of the list's select filters: categories in use and the newest issues."""
    return {"category_options": [("", "Any category")] + [(c, c) for c in catalogue.categories(session)],
            "issue_options": [("", "Any or none")] + [(str(i), f"{week} (#{i}) {subject}"[:80])
                                                       for i, week, subject in catalogue.recent_issues(session)],
            "status_options": [("", "Published or not"), ("published", "Published"),
                               ("unpublished", "Unpublished")]}


def form_page(ctx: ConsoleContext, me: Signed, values: dict[str, str], errors: dict[str, str], *,
              comparison=None, figures=None, saved: bool = False, status: int = 200) -> HTMLResponse:
    """The new/edit form, filled with `values`, each error next to its input."""
    editable = role_allows(me.editor.role, Permission.edit_comparisons)
    title = f"Edit {comparison.title}" if comparison and editable else (
        comparison.title if comparison else "New comparison")
    return page(ctx, "comparison_form.html", status, me=me, title=title, current="comparisons",
                values=values, errors=errors, comparison=comparison, figures=figures, saved=saved,
                editable=editable, slots=range(form.SLOTS), tool_fields=TOOL_FIELDS, tool_labels=TOOL_LABELS,
                lenses=[(lens.value, LENS_LABELS[lens]) for lens in Lens], timezone=ctx.settings.site.timezone,
                label_for=form.label_for, open_slots=form.open_slots(values, errors),
                can_follow_up=role_allows(me.editor.role, Permission.manage_issues))


def not_found(ctx: ConsoleContext, slug: str) -> HTMLResponse:
    return message(ctx, "No such comparison", f"There is no comparison {slug!r}.", 404,
                   [("All comparisons", "/admin/comparisons")])


@router.get("/comparisons/new", response_class=HTMLResponse)
def new_form(ctx: Console, me: Reviewer) -> HTMLResponse:
    return form_page(ctx, me, {name: "" for name in form.input_names()}, {})


@router.post("/comparisons/new", response_class=HTMLResponse)
def create(ctx: Console, me: Reviewer, fields: Posted) -> Response:
    check_csrf(ctx, me, fields.get("csrf_token", ""))
    return save(ctx, me, fields, None)


@router.get("/comparisons/{slug}", response_class=HTMLResponse)
def edit_form(request: Request, ctx: Console, me: Reader, slug: SlugPath) -> HTMLResponse:
    with session_scope(ctx.engine) as session:
        comparison = publishing.find(session, slug)
        if comparison is None:
            return not_found(ctx, slug)
        values = form.values_of(publishing.as_import(session, comparison), ctx.settings.site.zone)
        figures = catalogue.figures(session, comparison)
        session.expunge(comparison)
    return form_page(ctx, me, values, {}, comparison=comparison, figures=figures,
                     saved=request.query_params.get("saved") == "1")


@router.post("/comparisons/{slug}", response_class=HTMLResponse)
def update(ctx: Console, me: Reviewer, slug: SlugPath, fields: Posted) -> Response:
    check_csrf(ctx, me, fields.get("csrf_token", ""))
    return save(ctx, me, fields, slug)


def save(ctx: ConsoleContext, me: Signed, fields: dict[str, str], slug: str | None) -> Response:
    """Create (slug None) or update; on any error the form comes back as typed, with messages."""
    submitted = form.read(fields, ctx.settings.site.zone, slug)
    with session_scope(ctx.engine) as session:
        comparison = publishing.find(session, slug) if slug else None
        if slug and comparison is None:
            return not_found(ctx, slug)
        if submitted.data is not None:
            try:
                before, after = publishing.save(session, submitted.data, slug is None,
                                                origin_of(actor_of(me), "console"))
            except publishing.SlugTaken as exc:
                submitted.errors["slug"] = str(exc)
            else:
                action = "comparison.create" if before is None else "comparison.update"
                audit.record(session, actor_of(me), action, f"comparison:{submitted.data.slug}", before, after)
                return RedirectResponse(f"/admin/comparisons/{submitted.data.slug}?saved=1", status_code=303)
        figures = catalogue.figures(session, comparison) if comparison else None
        if comparison is not None:
            session.expunge(comparison)
    return form_page(ctx, me, submitted.values, submitted.errors, comparison=comparison, figures=figures,
                     status=422)


def set_published(ctx: ConsoleContext, me: Signed, slug: str, token: str, published: bool) -> Response:
    check_csrf(ctx, me, token)
    try:
        publish_audited(ctx.engine, actor_of(me), slug, published, "console")
    except publishing.NoSuchComparison:
        return not_found(ctx, slug)
    return RedirectResponse(f"/admin/comparisons/{slug}", status_code=303)


@router.post("/comparisons/{slug}/unpublish", response_class=HTMLResponse)
def unpublish(ctx: Console, me: Reviewer, slug: SlugPath, fields: Posted) -> Response:
    return set_published(ctx, me, slug, fields.get("csrf_token", ""), False)


@router.post("/comparisons/{slug}/publish", response_class=HTMLResponse)
def republish(ctx: Console, me: Reviewer, slug: SlugPath, fields: Posted) -> Response:
    return set_published(ctx, me, slug, fields.get("csrf_token", ""), True)
