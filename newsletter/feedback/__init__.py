"""Feedback: normalised delivery events, the rules that apply them, the bounce mailbox, provider webhooks."""
