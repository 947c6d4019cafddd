"""Delivery: the outbox of (issue, subscriber) rows, the send loop and the transports."""
