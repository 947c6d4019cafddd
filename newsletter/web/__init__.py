"""The web: the app factory, public pages, subscription, votes, tracking and webhook routes."""
