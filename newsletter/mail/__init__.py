"""Building RFC 5322 messages: headers, pre-encoded bodies, per-recipient assembly."""
