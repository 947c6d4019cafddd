"""What the ledger says a reader received: the question a vote link asks before it counts.

A vote is the verdict of someone who read the comparison in their issue. A vote token names a
reader, not a comparison, so without this check it would count on any comparison of the site,
including ones never sent to that reader.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlmodel import Session

from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.issues.models import IssueItem


def in_variant():
    """SQL: the joined IssueItem was in the joined Delivery's variant (NULL mask: the whole issue;
    else bit `position` of the mask). For queries over many readers, e.g. a follow-up's recipients."""
    return or_(Delivery.variant_mask.is_(None),
               Delivery.variant_mask.op(">>")(IssueItem.position).op("&")(1) == 1)


def was_sent(session: Session, subscriber_id: int, comparison_id: int) -> bool:
    """True when an issue carrying the comparison was delivered to the reader, in their variant
    (a reader with topics is sent only the comparisons in them: delivery.variant_mask)."""
    rows = session.execute(
        select(Delivery.variant_mask, IssueItem.position)
        .join(IssueItem, IssueItem.issue_id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.state == DeliveryState.sent.value,
               IssueItem.comparison_id == comparison_id)
    ).all()
    return any(mask is None or mask >> position & 1 for mask, position in rows)
