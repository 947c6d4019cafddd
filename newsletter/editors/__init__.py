"""Editors of the publication: accounts, roles, sessions, API tokens and the audit log.

Domain code only (no web framework): newsletter/console/ puts it on the web, cli.py on the shell.
"""
