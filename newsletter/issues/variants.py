"""Each reader's issue: a variant of the frozen issue, compiled once per distinct variant.

A reader who chose topics gets only the issue's comparisons in those categories, in the issue's
order (which ones is fixed at enqueue: delivery.variant_mask, bit i for the i-th comparison); a
reader gets the "Verdicts that changed" lines that apply to them (issues/changed.py); a new
reader's copy of the latest issue carries a line saying so. A variant is the frozen view cut to
that: the frozen record stays the single source, a variant only leaves things out.

Rendering stays two-phase: a variant is a key (comparison positions, changed entries, notice), and
render.issue_template compiles each distinct view once per process, never per reader.

Subject rule (`issue.subject_follows_reader`, off by default): the editor writes the subject and
preheader about the issue's lead comparison. With the flag on, a reader whose issue leads with
another comparison (their topics left the lead out) gets a subject made from their own first
comparison: its title, plus "+ N more" when they get more than one, and its dek as the preheader
(its verdict line when it has no dek). Everyone whose issue starts with the lead keeps the
editor's subject and preheader.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from newsletter.issues.changed import changed_lines
from newsletter.issues.view import IssueView

SUBJECT_ROOM = 150  # characters of the first comparison's title a derived subject keeps


@dataclass(frozen=True)
class VariantKey:
    """What makes one reader's issue differ from another's; equal keys share one compile."""

    positions: tuple[int, ...]  # indexes in the whole issue, in its order
    changed: tuple[int, ...] = ()  # indexes of the frozen changed entries
    notice: str = ""


def positions_of(mask: int | None, count: int) -> tuple[int, ...]:
    """The comparisons a delivery's variant_mask selects; NULL (or a mask selecting nothing of
    this issue) means the whole issue."""
    chosen = tuple(range(count)) if mask is None else tuple(i for i in range(count) if mask >> i & 1)
    return chosen or tuple(range(count))


def mask_of(positions: tuple[int, ...]) -> int:
    return sum(1 << i for i in positions)


def variant_subject(full: IssueView, positions: tuple[int, ...], follow_reader: bool) -> tuple[str, str]:
    """(subject, preheader) of a variant: see the module's docstring for the rule."""
    if not follow_reader or not positions or positions[0] == 0:
        return full.subject, full.preheader
    first = full.comparisons[positions[0]]
    title = first.title if len(first.title) <= SUBJECT_ROOM else first.title[:SUBJECT_ROOM - 1].rstrip() + "…"
    subject = title if len(positions) == 1 else f"{title} + {len(positions) - 1} more"
    return subject, (first.dek or first.verdict_line)[:200]


def variant_view(full: IssueView, key: VariantKey, frozen_changes: dict | None, follow_reader: bool) -> IssueView:
    """The view one variant's readers see: the frozen issue cut to their comparisons, with their
    changed lines and notice. The whole issue with nothing to add is `full` itself."""
    everything = tuple(range(len(full.comparisons)))
    if key.positions == everything and not key.changed and not key.notice:
        return full
    subject, preheader = variant_subject(full, key.positions, follow_reader)
    return replace(full, subject=subject, preheader=preheader,
                   comparisons=[full.comparisons[i] for i in key.positions],
                   positions=None if key.positions == everything else list(key.positions),
                   changed=changed_lines(frozen_changes, key.changed), notice=key.notice)


def latest_notice(sent_on: datetime | None) -> str:
    """The line atop the latest issue sent to a reader who just subscribed."""
    when = f", sent on {sent_on.day} {sent_on:%B %Y}" if sent_on is not None else ""
    return f"You just subscribed — this is our latest issue{when}, as it went out."
