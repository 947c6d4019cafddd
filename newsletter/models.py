"""Imports every table so SQLModel.metadata is complete (for Alembic and tests)."""

from newsletter.content.models import Comparison, ComparisonTool, Review, Tool, Vote
from newsletter.delivery.models import Delivery, SendWindow, WorkerHeartbeat
from newsletter.issues.models import Issue, IssueItem
from newsletter.tracking.models import TrackingEvent  # noqa: F401
from newsletter.webhooks.models import WebhookEvent, WebhookNonce  # noqa: F401
from subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, Suppression

__all__ = [
    "Comparison", "ComparisonTool", "ConsentEvent", "Delivery", "Issue", "IssueItem",
    "Review", "SendWindow", "Subscriber", "SubscriberTopic", "Suppression", "Tool", "Vote", "WorkerHeartbeat",
]
