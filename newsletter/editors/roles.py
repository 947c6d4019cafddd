"""Who may do what, in one place: editor roles in order, and API token scopes.

Each role can do everything the roles below it can (viewer < reviewer < editor < owner), so
a permission is just the least role that holds it. Tokens carry scopes instead of a role:
`read` is every GET of the API, `comparisons` writes comparisons, `issues` drafts, tests,
schedules and sends issues, `readers` manages readers, `all` is everything.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(IntEnum):
    viewer = 1    # reads everything
    reviewer = 2  # also edits comparisons and their reviews
    editor = 3    # also drafts, edits, tests, schedules and sends issues; manages readers
    owner = 4     # also manages editors, API tokens and settings

    @classmethod
    def parse(cls, name: str) -> "Role":
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"role must be one of {', '.join(r.name for r in cls)}, not {name!r}") from None


class Permission(StrEnum):
    read = "read"
    edit_comparisons = "edit_comparisons"
    manage_issues = "manage_issues"
    manage_readers = "manage_readers"
    manage_editors = "manage_editors"


LEAST_ROLE: dict[Permission, Role] = {
    Permission.read: Role.viewer,
    Permission.edit_comparisons: Role.reviewer,
    Permission.manage_issues: Role.editor,
    Permission.manage_readers: Role.editor,
    Permission.manage_editors: Role.owner,
}


class Scope(StrEnum):
    read = "read"
    comparisons = "comparisons"
    issues = "issues"
    readers = "readers"
    all = "all"


# The permissions each token scope grants (managing editors and tokens is for people only).
SCOPE_GRANTS: dict[Scope, frozenset[Permission]] = {
    Scope.read: frozenset({Permission.read}),
    Scope.comparisons: frozenset({Permission.edit_comparisons}),
    Scope.issues: frozenset({Permission.manage_issues}),
    Scope.readers: frozenset({Permission.manage_readers}),
    Scope.all: frozenset(set(Permission) - {Permission.manage_editors}),
}


def role_allows(role: str, permission: Permission) -> bool:
    try:
        return Role[role] >= LEAST_ROLE[permission]
    except KeyError:  # a role name this version does not know grants nothing
        return False


def scopes_allow(scopes: str, permission: Permission) -> bool:
    known = {scope.value for scope in Scope}
    return any(permission in SCOPE_GRANTS[Scope(name)] for name in scopes.split() if name in known)


def parse_scopes(values: list[str]) -> str:
    """Scopes from the command line (repeated or comma-separated), checked, in a stable order."""
    names = {part.strip() for value in values for part in value.replace(",", " ").split() if part.strip()}
    if not names:
        raise ValueError("give at least one scope: " + ", ".join(s.value for s in Scope))
    unknown = sorted(names - {s.value for s in Scope})
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes are " + ", ".join(s.value for s in Scope))
    return " ".join(s.value for s in Scope if s.value in names)
