"""Provider webhooks: one module per provider verifies the request's authenticity and turns the
payload into NormalizedEvents (events.py); routes.py serves them at POST /webhooks/{provider};
newsletter/feedback/rules.py applies every event (the same rules as the bounce mailbox).
"""
