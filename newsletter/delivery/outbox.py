"""Set-based outbox statements: enqueue, skip, claim, record.

Every state change is one conditional UPDATE, so concurrent workers and
restarts can never move a delivery twice (a row already `sent` never matches
a statement that expects `sending`). A claim records the worker (`claimed_by`)
so that a worker stopping early can release exactly the rows it holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, case, cast, exists, func, literal, or_, select, \
    text, update
from sqlmodel import Session

from newsletter import tallies
from newsletter.content.models import Comparison
from newsletter.db import insert_for
from newsletter.delivery import queue, retry_side
from newsletter.delivery.models import PENDING, PENDING_SQL, Delivery, DeliveryState
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.states import IssueState
from newsletter.subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Suppression


def variant_mask(issue_id, subscriber_id=Subscriber.id):
    """Which of the issue's comparisons a reader gets, as bits (bit i: the comparison at position
    i, positions being 0..n-1, issues/editing.py): the sum over the reader's topics of the items
    in that category (each item once: a comparison has one category). NULL for a reader with no
    topics: the whole issue (issues/variants.py reads it). `issue_id` and `subscriber_id` are
    values or the columns of an outer query (correlated)."""
    bit = cast(literal(1), BigInteger).op("<<")(IssueItem.position)
    return (
        select(func.sum(bit))
        .select_from(IssueItem)
        .join(Comparison, Comparison.id == IssueItem.comparison_id)
        .join(SubscriberTopic, SubscriberTopic.category == Comparison.category)
        .where(IssueItem.issue_id == issue_id, SubscriberTopic.subscriber_id == subscriber_id)
        .scalar_subquery()
    )


def category_masks(session: Session, issue_id: int) -> dict[str, int]:
    """The variant-mask bits of each category of the issue (a few rows, read once per enqueue)."""
    masks: dict[str, int] = {}
    rows = session.execute(select(Comparison.category, IssueItem.position)
                           .join(IssueItem, IssueItem.comparison_id == Comparison.id)
                           .where(IssueItem.issue_id == issue_id)).all()
    for category, position in rows:
        masks[category] = masks.get(category, 0) | 1 << position
    return masks


def mask_from_topics(masks: dict[str, int]):
    """`variant_mask` for one issue whose category bits are known: a sum over the reader's topic
    rows alone (one index range, no join per reader); NULL for a reader with no topics. Enqueueing
    100,000 readers (10 % with topics) on SQLite: 0.30 CPU s against 0.27 without a mask (the join
    of `variant_mask` per reader cost ~50 % more wall time); on PostgreSQL ~10-15 % more wall time
    on a loaded machine."""
    if not masks:
        return literal(None, BigInteger)
    bits = case(*((SubscriberTopic.category == category, literal(mask, BigInteger)) for category, mask in masks.items()),
                else_=literal(0, BigInteger))
    return select(func.sum(bits)).where(SubscriberTopic.subscriber_id == Subscriber.id).scalar_subquery()


def eligible_subscribers(issue_id: int, now: datetime, masks: dict[str, int] | None = None):
    """Active, not suppressed, not paused, and wanting at least one of the issue's topics
    (a subscriber with no topics wants them all); with `masks` (category_masks), the variant mask
    of each as a sixth column."""
    issue_categories = (
        select(Comparison.category)
        .join(IssueItem, IssueItem.comparison_id == Comparison.id)
        .where(IssueItem.issue_id == issue_id)
    )
    has_topics = exists().where(SubscriberTopic.subscriber_id == Subscriber.id)
    wants_one = exists().where(
        SubscriberTopic.subscriber_id == Subscriber.id, SubscriberTopic.category.in_(issue_categories)
    )
    suppressed = exists().where(Suppression.email == Subscriber.email)
    return (
        select(literal(issue_id), Subscriber.id, literal(DeliveryState.queued.value), literal(0), literal(now),
               *([mask_from_topics(masks)] if masks is not None else []))
        .where(Subscriber.status == SubscriberStatus.active.value)
        .where(~suppressed)
        .where(or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now))
        .where(or_(~has_topics, wants_one))
    )


def without_jit(session: Session) -> None:
    """PostgreSQL: no JIT compilation for the rest of the caller's transaction (SET LOCAL).

    Why: the planner prices the eligibility query far above its cost (the subscriber scan with its
    topic and suppression subplans: ~820,000 for 20,000 readers, linear in the list) and so above
    jit_above_cost (100,000) and the inlining and optimisation thresholds (500,000). PostgreSQL
    then compiled the statement with LLVM before running it: a 20,000-reader enqueue took 0.51-0.57 s
    of the backend's CPU with JIT, 0.28-0.35 s without (EXPLAIN ANALYZE on a busy machine: "JIT ...
    Inlining 375 ms, Optimization 693 ms, Emission 480 ms"), and every worker waits for that
    commit (issue 18). The work is inserts, index entries and foreign-key checks, which JIT does not
    speed up."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def count_eligible(session: Session, issue_id: int, now: datetime) -> int:
    """How many subscribers a send would enqueue now (for the editor's confirmation); the same
    query as the enqueue's, so without JIT too (without_jit)."""
    without_jit(session)
    return session.execute(select(func.count()).select_from(eligible_subscribers(issue_id, now).subquery())).scalar_one()


def enqueue(session: Session, issue_id: int, now: datetime) -> int:
    """One INSERT … SELECT; the unique (issue, subscriber) key makes repeats no-ops. Without JIT
    (without_jit: compiling it cost more than running it)."""
    without_jit(session)
    columns = ["issue_id", "subscriber_id", "state", "attempts", "created_at", "variant_mask"]
    statement = (
        insert_for(session, Delivery.__table__)
        .from_select(columns, eligible_subscribers(issue_id, now, category_masks(session, issue_id)))
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
        .execution_options(preserve_rowcount=True)  # psycopg reports -1 for INSERT … SELECT otherwise
    )
    enqueued = session.execute(statement).rowcount or 0
    tallies.add(session, {(issue_id, "recipients"): enqueued})
    return enqueued


def among(session: Session, column, ids: list[int]):
    """`column IN ids`; on PostgreSQL as `column = ANY(one array parameter)`: the statement's text
    is then the same for every batch, so psycopg prepares it once (a 500-placeholder IN list was
    re-rendered by SQLAlchemy and re-parsed by psycopg for every batch)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=ARRAY(BigInteger)))
    return column.in_(ids)


def claimed_rows(session: Session, ids: list[int]) -> list[tuple]:
    """Of the rows just claimed (`ids`) those still `sending`, with what a message needs of each:
    (delivery id, attempts, subscriber id, email, name, token key), lowest id first. Read as plain
    tuples through Core: ORM rows cost a tenth of a worker's time. The state is checked here, not
    in SQL: by id alone the plan reads exactly these rows, whatever the statistics say of states."""
    if not ids:
        return []
    d, s = Delivery.__table__.c, Subscriber.__table__.c
    statement = (
        select(d.id, d.attempts, s.id, s.email, s.name, s.token_key, d.state)
        .join_from(Delivery.__table__, Subscriber.__table__, s.id == d.subscriber_id)
        .where(among(session, d.id, ids))
        .order_by(d.id)
    )
    sending = DeliveryState.sending.value
    return [tuple(row)[:6] for row in session.connection().execute(statement) if row[6] == sending]


def skip_ineligible(session: Session, ids: list[int], issue_id: int) -> int:
    """Unsubscribed or suppressed since enqueue: of the rows just claimed (`ids`), those become
    `skipped` instead of being sent. Checked per claimed batch (an index lookup per row), not over
    the whole queue: a scan of every subscriber before each claim cost ~0.5 s per batch at a
    million subscribers."""
    if not ids:
        return 0
    gone = exists().where(
        Subscriber.id == Delivery.subscriber_id,
        or_(
            Subscriber.status != SubscriberStatus.active.value,
            exists().where(Suppression.email == Subscriber.email),
        ),
    )
    statement = (
        update(Delivery)
        .where(among(session, Delivery.id, ids), Delivery.state == DeliveryState.sending.value, gone)
        .values(state=DeliveryState.skipped.value, lease_until=None,
                last_error="unsubscribed or suppressed before sending")
        .execution_options(synchronize_session=False)
    )
    skipped = session.connection().execute(statement).rowcount or 0  # Core: no ORM bulk-update work
    tallies.add(session, {(issue_id, "skipped"): skipped})
    return skipped


def claim(
    session: Session, issue_id: int, now: datetime, limit: int, lease: timedelta, worker_id: str | None = None,
    from_id: int | None = None, stale: datetime | None = None, kept: bool = False,
) -> list[int]:
    """Take up to `limit` deliveries that are due (queue.due: queued, due retries, or sending under
    a worker that is gone: lease expired or heartbeat older than `stale`), and only while the issue
    is `sending` (a pause or a cancel stops every worker at its next claim). One statement
    (queue.claim), so the issue's state is read in the same statement that takes the rows.

    The rows are found by walking the issue's ids in order (ix_delivery_issue_id or the primary
    key), lowest first, checking each row's state: no index holds the state (migration 0032: the
    claim and the result then update the row in place). A walk from the issue's first id steps
    over every row already handled; `from_id` starts it there instead: a worker's claims start at
    its previous claim's lowest id or at the lowest id not yet final (claim_batch.ClaimCursor).
    Which pending rows are due is one CASE rather than an OR of (state, time) pairs, checked on
    the row: the walk gives the lowest ids in order. `kept`: instead of a walk, the rows kept
    beside it whose entry is due (retry_side.py: retries the walk's floor left behind)."""
    conditions = [
        Delivery.issue_id == issue_id,
        text(f"delivery.{PENDING_SQL}"),  # checked on each row the walk reads
        exists().where(Issue.id == issue_id, Issue.state == IssueState.sending.value),
    ]
    if kept:
        conditions.append(Delivery.id.in_(retry_side.due_ids(issue_id, now)))
    elif from_id is not None:
        conditions.append(Delivery.id >= from_id)
    return queue.claim(session, Delivery, conditions, now, limit, lease, worker_id, stale)


_table = Delivery.__table__


def _record_many(session: Session, values: dict, rows: list[dict], worker: str | None = None) -> int:
    """One UPDATE per row, sent as one executemany (psycopg pipelines it into one round trip):
    a batch of 500 results as 500 separate ORM updates cost ~25% of a worker's time. Each row moves
    only if it is still `sending`, so a row recorded elsewhere (lease expired, another worker) stays,
    and, given `worker`, only while that worker holds it: a worker cut off from the database past
    its lease cannot, when its late results arrive, overwrite a row another worker claimed since.
    Returns how many rows moved (what the issue's counters add: newsletter/tallies.py)."""
    if not rows:
        return 0
    statement = (
        update(_table)
        .where(_table.c.id == bindparam("b_id"), _table.c.state == DeliveryState.sending.value)
        .values(lease_until=None, **values)
    )
    if worker is not None:
        statement = statement.where(_table.c.claimed_by == worker)
    return session.connection().execute(statement, rows).rowcount


def mark_sent(session: Session, now: datetime, sent: list[tuple[int, str, str | None]],
              worker: str | None = None) -> int:
    """`sent`: (delivery id, Message-ID, provider's message id) per delivery."""
    return _record_many(session, {"state": DeliveryState.sent.value, "sent_at": now, "message_id": bindparam("b_msg"),
                           "provider_message_id": bindparam("b_pid"), "last_error": None},
                 [{"b_id": i, "b_msg": msg, "b_pid": pid} for i, msg, pid in sent], worker)


def mark_retry(session: Session, retries: list[tuple[int, datetime, str]], worker: str | None = None) -> int:
    """`retries`: (delivery id, next attempt, error) per delivery; each kept beside the walk
    (retry_side.note), in the same transaction."""
    moved = _record_many(session, {"state": DeliveryState.retry.value, "next_attempt_at": bindparam("b_next"),
                           "last_error": bindparam("b_error")},
                 [{"b_id": i, "b_next": when, "b_error": error[:2000]} for i, when, error in retries], worker)
    if moved:
        retry_side.note(session, [i for i, _when, _error in retries])
    return moved


def mark_failed(session: Session, failures: list[tuple[int, str]], worker: str | None = None) -> int:
    """`failures`: (delivery id, error) per delivery."""
    return _record_many(session, {"state": DeliveryState.failed.value, "last_error": bindparam("b_error")},
                 [{"b_id": i, "b_error": error[:2000]} for i, error in failures], worker)


_RECORD_PG = text("""
    UPDATE delivery AS d SET
        state = v.state, lease_until = NULL, last_error = v.error,
        sent_at = CASE WHEN v.state = 'sent' THEN CAST(:done AS timestamptz) ELSE d.sent_at END,
        message_id = CASE WHEN v.state = 'sent' THEN v.message_id ELSE d.message_id END,
        provider_message_id = CASE WHEN v.state = 'sent' THEN v.provider_id ELSE d.provider_message_id END,
        next_attempt_at = CASE WHEN v.state = 'retry' THEN v.next_at ELSE d.next_attempt_at END
    FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]), CAST(:message_ids AS text[]),
                CAST(:provider_ids AS text[]), CAST(:next_ats AS timestamptz[]), CAST(:errors AS text[]),
                CAST(:held AS text[]), CAST(:held_by AS text[]))
        AS v(id, state, message_id, provider_id, next_at, error, held, held_by)
    WHERE d.id = v.id AND d.state = v.held AND (v.held_by IS NULL OR d.claimed_by = v.held_by)
    RETURNING v.state
""")


def _element(value: object) -> str:
    """One element of a text array literal: NULL, or the value quoted with `\\` and `"` escaped."""
    return "NULL" if value is None else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(values: list) -> str:
    """A PostgreSQL array literal of text values (None: NULL), every element quoted: one string
    parameter, made by str.join, instead of psycopg dumping each element of a list in Python. A
    column of one repeated value (all "sent", all NULL, one worker) is quoted once (~2 us a message)."""
    if values and values.count(values[0]) == len(values):
        return "{" + ",".join([_element(values[0])] * len(values)) + "}"
    return "{" + ",".join(map(_element, values)) + "}"


def record(session: Session, done: datetime, sent: list[tuple[int, str, str | None]],
           retries: list[tuple[int, datetime, str]], failures: list[tuple[int, str]],
           worker: str | None = None) -> dict[str, int]:
    """A batch's results (as mark_sent, mark_retry and mark_failed take them) in ONE statement on
    PostgreSQL: UPDATE … FROM unnest(one array per column), each row moving only if it is still
    `sending`, like the three below. 500 single-row UPDATEs per batch (even pipelined) were a
    tenth of a worker's CPU and as many statements for the server to plan and run. Elsewhere
    (SQLite) the three executemany statements.

    "Still `sending`" is a join term (`d.state = v.held`), not `d.state = 'sending'`: statistics
    taken before a send say almost no row is `sending`, and with that restriction PostgreSQL's
    plan (generic, once psycopg prepares the statement) once read every pending row through an
    index of them to hash-join them: 0.6–0.9 s per batch at 20,000 readers, and growing with the
    send. As a join term it stays a lookup by id per row, whatever index comes and goes.
    Given `worker`, a row moves only while that worker holds it (see `_record_many`). Returns how
    many rows moved to each state, for the issue's counters (newsletter/tallies.py)."""
    if session.get_bind().dialect.name != "postgresql":
        return {DeliveryState.sent.value: mark_sent(session, done, sent, worker),
                DeliveryState.retry.value: mark_retry(session, retries, worker),
                DeliveryState.failed.value: mark_failed(session, failures, worker)}
    moved = {DeliveryState.sent.value: 0, DeliveryState.retry.value: 0, DeliveryState.failed.value: 0}
    count = len(sent) + len(retries) + len(failures)
    if not count:
        return moved
    ids = [i for i, _m, _p in sent] + [i for i, _n, _e in retries] + [i for i, _e in failures]
    nothing = [None] * len(sent)
    rows = session.connection().execute(_RECORD_PG, {
        "ids": "{" + ",".join(map(str, ids)) + "}",
        "states": _array([DeliveryState.sent.value] * len(sent) + [DeliveryState.retry.value] * len(retries)
                         + [DeliveryState.failed.value] * len(failures)),
        "message_ids": _array([m for _i, m, _p in sent] + [None] * (len(retries) + len(failures))),
        "provider_ids": _array([p for _i, _m, p in sent] + [None] * (len(retries) + len(failures))),
        "next_ats": _array(nothing + [when.isoformat() for _i, when, _e in retries] + [None] * len(failures)),
        "errors": _array(nothing + [e[:2000] for _i, _n, e in retries] + [e[:2000] for _i, e in failures]),
        "held": _array([DeliveryState.sending.value] * count),
        "held_by": _array([worker] * count),
        "done": done,
    })
    for (state,) in rows:
        moved[state] += 1
    if moved[DeliveryState.retry.value]:  # rare: a statement more only then
        retry_side.note(session, [i for i, _n, _e in retries])
    return moved


def counts(session: Session, issue_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.state, func.count()).where(Delivery.issue_id == issue_id).group_by(Delivery.state)
    ).all()
    return {state: count for state, count in rows}


def counts_from(session: Session, issue_id: int, floor: int | None) -> dict[str, int]:
    """`counts` for a worker at its end of send: the final states from the issue's counters
    (newsletter/tallies.py, exact), the pending ones counted from `floor` (below it only the
    retries kept beside the walk are pending, counted from there: claim_batch.ClaimCursor,
    retry_side.py). No index holds the state (migration 0032): a count by state
    over every row of the issue, by each worker at its end, read the whole issue again."""
    found = tallies.final_counts(session, issue_id)
    statement = (select(Delivery.state, func.count())
                 .where(Delivery.issue_id == issue_id, Delivery.state.in_(PENDING), Delivery.id >= (floor or 0))
                 .group_by(Delivery.state))
    found.update({state: count for state, count in session.execute(statement).all()})
    if floor is not None:  # the retries below the floor (retry_side.py)
        for state, count in retry_side.count_pending_below(session, issue_id, floor).items():
            found[state] = found.get(state, 0) + count
    return found


def counts_of(session: Session, issue_id: int, sent: bool, floor: int | None = None) -> dict[str, int]:
    """An issue's deliveries by state, read as cheaply as its state allows. A `sent` issue has
    nothing pending (it became sent when no row was): its counters are its counts, no row read;
    each worker at the end of a send, the one that lost the race to finish it, and the editors'
    notice counted every row of the issue, or every row from a floor up to 10 s old. Otherwise
    `counts_from` (from `floor`; from the issue's first row without one)."""
    return tallies.final_counts(session, issue_id) if sent else counts_from(session, issue_id, floor)


def pending(session: Session, issue_id: int) -> int:
    return session.execute(
        select(func.count()).where(Delivery.issue_id == issue_id, Delivery.state.in_(PENDING))
    ).scalar_one()
