"""Moved to newsletter/delivery/ (transactional.py: the mails; mailqueue.py: their queue).
Kept as a thin re-export for code that imports the old path."""

from newsletter.delivery.mailqueue import send_pending
from newsletter.delivery.transactional import build_message, compiled_kind, template_for

__all__ = ["build_message", "compiled_kind", "send_pending", "template_for"]
