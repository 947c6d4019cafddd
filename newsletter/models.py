"""Imports every table so SQLModel.metadata is complete (for Alembic and tests)."""

from newsletter.audience_tally import AudienceTally
from newsletter.content.models import Comparison, ComparisonTool, ContentRevision, FeedState, Review, Tool, Vote
from newsletter.delivery.followup_models import FollowupDelivery
from newsletter.delivery.models import Delivery, DeliveryRetry, SendWindow, WorkerHeartbeat
from newsletter.editors.idempotency import IdempotencyKey
from newsletter.editors.models import ApiToken, AuditEntry, Editor, EditorSession
from newsletter.issues.followup_models import Followup
from newsletter.issues.models import Issue, IssueItem, IssueRecord
from newsletter.outgoing import WebhookDelivery, WebhookEndpoint
from newsletter.feedback.models import TrackingEvent, WebhookEvent, WebhookNonce
from newsletter.subscribers.import_jobs import ImportJob
from newsletter.send_rate import IssueSendRate
from newsletter.tallies import IssueTally
from newsletter.subscribers.models import (ConsentEvent, ExpiredSignup, Subscriber, SubscriberTopic, Suppression,
                                           TransactionalMail)

__all__ = [
    "ApiToken", "AudienceTally", "AuditEntry", "Editor", "EditorSession", "IdempotencyKey", "ImportJob",
    "Comparison", "ComparisonTool", "ContentRevision", "FeedState", "ConsentEvent", "Delivery", "ExpiredSignup", "Followup", "FollowupDelivery", "DeliveryRetry", "Issue", "IssueItem", "IssueRecord", "IssueSendRate", "IssueTally", "Review", "SendWindow",
    "Subscriber", "SubscriberTopic", "Suppression", "Tool", "TrackingEvent", "TransactionalMail", "Vote",
    "WebhookDelivery", "WebhookEndpoint", "WebhookEvent", "WebhookNonce", "WorkerHeartbeat",
]
