"""Errors meant for a person: the CLI prints them without a stack trace."""


class UserError(Exception):
    """A problem the operator or editor can fix (bad input, bad config, wrong state)."""


class ConfigError(UserError):
    """The configuration is invalid: the message names the file, the key and the reason."""
