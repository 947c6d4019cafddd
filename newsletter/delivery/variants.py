"""Which variant of an issue each claimed delivery gets, and its template (issues/variants.py).

Prepared once per send and worker (SendVariants.prepare: the frozen view, the frozen changes, the
editor's subject flag); per claimed batch, `templates_for` takes the rows' variant masks (the claim
returns them) and, when the issue carries "Verdicts that changed", reads what the batch's readers
were sent before (the delivery ledger: one query for the whole batch), and hands back one template
per row. Each distinct
variant is compiled once per process (issues/render.py `issue_template`), never per reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.issues.frozen import freeze, frozen_changes
from newsletter.issues.models import Issue
from newsletter.issues.render import issue_template
from newsletter.issues.variants import VariantKey, positions_of, variant_view
from newsletter.issues.view import IssueView
from newsletter.mail.mime import MessageTemplate


def changed_for(changes: dict, sent: dict[int, int | None]) -> tuple[int, ...]:
    """The indexes of the frozen changed entries that apply to one reader, given the earlier
    issues they were sent ({issue id: variant mask}): for each changed comparison, the entry of the
    last issue that brought it to them, if that issue's verdict is the one that moved."""
    entry_at = {(entry["issue_id"], entry["slug"]): i for i, entry in enumerate(changes.get("entries", []))}
    chosen = []
    for slug, carriers in changes.get("carriers", {}).items():
        last = None
        for issue_id, index in carriers:  # oldest first
            if issue_id in sent and (sent[issue_id] is None or sent[issue_id] >> index & 1):
                last = issue_id
        if last is not None and (last, slug) in entry_at:
            chosen.append(entry_at[(last, slug)])
    return tuple(sorted(chosen))


def sent_before(session: Session | None, changes: dict, subscriber_ids: list[int]) -> dict[int, dict[int, int | None]]:
    """{reader: {earlier issue: variant mask}} from the ledger, for the issues that carried a
    changed comparison (nothing to read when the issue has no changes)."""
    issues = {issue_id for carriers in changes.get("carriers", {}).values() for issue_id, _index in carriers}
    if not issues or not subscriber_ids:
        return {}
    found: dict[int, dict[int, int | None]] = {}
    rows = session.execute(
        select(Delivery.subscriber_id, Delivery.issue_id, Delivery.variant_mask)
        .where(Delivery.subscriber_id.in_(subscriber_ids), Delivery.issue_id.in_(issues),
               Delivery.state == DeliveryState.sent.value)
    ).all()
    for subscriber_id, issue_id, mask in rows:
        found.setdefault(subscriber_id, {})[issue_id] = mask
    return found


@dataclass
class SendVariants:
    """One send's variants, for one worker."""

    settings: Settings
    full: IssueView
    changes: dict
    follow_reader: bool
    notice: str = ""
    templates: dict[VariantKey, MessageTemplate] = field(default_factory=dict)

    @classmethod
    def prepare(cls, session: Session, settings: Settings, issue: Issue, notice: str = "") -> SendVariants:
        return cls(settings, freeze(session, settings, issue), frozen_changes(session, issue.id),
                   issue.subject_follows_reader, notice)

    def template(self, key: VariantKey) -> MessageTemplate:
        found = self.templates.get(key)
        if found is None:
            view = variant_view(self.full, key, self.changes, self.follow_reader)
            found = self.templates[key] = issue_template(self.settings, view)
        return found

    def keys(self, session: Session | None, readers: list[tuple[int, int | None]]) -> list[VariantKey]:
        """The variant of each (subscriber id, variant mask), in order (`session`: None only when
        the issue has no changes: sent_before reads nothing then)."""
        count = len(self.full.comparisons)
        if not self.changes.get("carriers"):
            # No changed verdict to carry: the mask alone decides, and a batch has a few distinct
            # ones. One key per mask, not per reader (2-3 us a message, a few % of a worker's CPU).
            by_mask: dict[int | None, VariantKey] = {}
            for _subscriber_id, mask in readers:
                if mask not in by_mask:
                    by_mask[mask] = VariantKey(positions_of(mask, count), (), self.notice)
            return [by_mask[mask] for _subscriber_id, mask in readers]
        before = sent_before(session, self.changes, [subscriber_id for subscriber_id, _mask in readers])
        return [VariantKey(positions_of(mask, count), changed_for(self.changes, before.get(subscriber_id, {})),
                           self.notice) for subscriber_id, mask in readers]

    def templates_for(self, engine: Engine, rows: list[tuple[int, int, int | None]]
                      ) -> dict[int, MessageTemplate | Exception]:
        """{delivery id: template} for a claimed batch's (delivery id, subscriber id, variant mask)
        rows (the claim returns the masks: delivery/claim_batch.py): one compile per variant new to
        this process, and, only when the issue carries changes, one indexed read for the batch.
        A variant that cannot be compiled (an operator's template failing for a cut-down issue,
        say) gives its rows the error instead, once per batch: their messages fail on their own,
        as one that cannot be built does, and the batch's other readers get theirs."""
        readers = [(subscriber_id, mask) for _delivery_id, subscriber_id, mask in rows]
        if self.changes.get("carriers") and rows:
            with session_scope(engine) as session:
                keys = self.keys(session, readers)
        else:  # nothing to read from the ledger (sent_before): no session, no round trip
            keys = self.keys(None, readers)
        found: dict[VariantKey, MessageTemplate | Exception] = {}
        for key in set(keys):
            try:
                found[key] = self.template(key)
            except Exception as exc:
                found[key] = exc
        return {delivery_id: found[key] for (delivery_id, _subscriber_id, _mask), key in zip(rows, keys)}
