"""The audience: subscribers, their consent history and the suppression list.

Layering: this package may use newsletter.config, newsletter.db, newsletter.errors
and newsletter.text only; the pipeline uses it, never the other way round.
"""
