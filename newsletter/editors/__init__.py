"""Editors of the publication: accounts, roles, sessions, API tokens and the audit log.

Domain code only (no web framework): newsletter/web/console/ puts it on the web, cli.py on the shell.
"""
