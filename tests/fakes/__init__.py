"""Stand-ins for the outside world (an SMTP server, the HTTP mail providers), importable by tests only."""
