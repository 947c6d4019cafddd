"""The CSV exports of other newsletter platforms, told apart by their header row.

Each platform names its columns and its status values differently; this module says, for each,
which column means what here (a *target*) and what each of its statuses means here. The column
names and values are those the platforms' own exports write (their help pages and migration
tools, checked 2026-12): a reader moving a list from Mailchimp, Substack, Buttondown, Ghost or
listmonk uploads the file as downloaded. A file we do not recognise gets a guess from common
column names, which the editor can correct in the mapping step.

Statuses are mapped so that nobody the source says left, bounced, complained or was disabled
becomes active here: those become unsubscribed readers or suppressions (importing.py's rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Where a column can go (the mapping step's choices), in the order the console lists them.
TARGETS = {
    "ignore": "Ignore this column",
    "email": "Email address",
    "name": "Name",
    "first_name": "First name (joined to the last name)",
    "last_name": "Last name",
    "topics": "Topics (categories, split by ; or |)",
    "status": "Status (translated from the platform's values)",
    "subscribed": "Subscribed to emails (true/false)",
    "email_disabled": "Email disabled (true means unsubscribed)",
    "created_at": "Join date",
    "confirmed_at": "Opt-in confirmed at",
    "optin_at": "Signed up at (opt-in request)",
    "optin_ip": "Sign-up IP address",
    "confirm_ip": "Confirmation IP address",
    "unsubscribed_at": "Unsubscribed at (set means unsubscribed)",
    "cleaned_at": "Cleaned / bounced at (set means bounced)",
    "paused_until": "Paused until (an active reader's pause, kept when still to run)",
}
# A target that at most one column may have (all but "ignore").
SINGLE = frozenset(TARGETS) - {"ignore"}


@dataclass(frozen=True)
class Platform:
    key: str  # in consent sources ("import:mailchimp"), the API and `--from`
    label: str
    markers: frozenset[str] = frozenset()  # casefolded header names that, all present, identify the export
    columns: dict[str, str] = field(default_factory=dict)  # casefolded header name -> target
    statuses: dict[str, str] = field(default_factory=dict)  # casefolded status value -> our status
    refused: dict[str, str] = field(default_factory=dict)  # casefolded status value -> why the row is left out


MAILCHIMP = Platform(
    "mailchimp", "Mailchimp", frozenset({"email address", "optin_time", "confirm_time"}),
    {"email address": "email", "first name": "first_name", "last name": "last_name", "optin_time": "optin_at",
     "optin_ip": "optin_ip", "confirm_time": "confirmed_at", "confirm_ip": "confirm_ip",
     "unsub_time": "unsubscribed_at", "clean_time": "cleaned_at"},
    # An audience export is three files (subscribed, unsubscribed, cleaned) without a status column:
    # UNSUB_TIME and CLEAN_TIME say which one this is.
)
SUBSTACK = Platform(
    "substack", "Substack", frozenset({"email", "active_subscription"}),
    {"email": "email", "name": "name", "email_disabled": "email_disabled", "created_at": "created_at"},
    # active_subscription is about a paid plan, not about mail: a free reader is "false" and still reads.
)
BUTTONDOWN = Platform(
    "buttondown", "Buttondown", frozenset({"subscriber_type"}),
    {"email": "email", "email_address": "email", "creation_date": "created_at", "subscriber_type": "status"},
    {"regular": "active", "premium": "active", "gifted": "active", "trialed": "active", "churning": "active",
     "past_due": "active", "paused": "active", "unpaid": "active", "unactivated": "pending",
     "unsubscribed": "unsubscribed", "removed": "unsubscribed", "undeliverable": "bounced",
     "complained": "complained"},
    {"spammy": "Buttondown marked this address as spam"},
)
GHOST = Platform(
    "ghost", "Ghost", frozenset({"email", "subscribed_to_emails"}),
    {"email": "email", "name": "name", "subscribed_to_emails": "subscribed", "created_at": "created_at"},
    # labels are Ghost's own tags, seldom this publication's categories: map them to topics by hand.
)
LISTMONK = Platform(
    "listmonk", "listmonk", frozenset({"uuid", "email", "attributes", "status"}),
    {"email": "email", "name": "name", "status": "status", "created_at": "created_at"},
    {"enabled": "active", "disabled": "unsubscribed", "blocklisted": "unsubscribed"},
)
NATIVE = Platform(
    "newsletter", "Weekly Verdicts (subscribers export)", frozenset({"email"}),
    {name: name for name in ("email", "name", "topics", "status", "created_at", "confirmed_at", "unsubscribed_at",
                             "paused_until")},
    {status: status for status in ("active", "unsubscribed", "bounced", "complained", "pending")},
)
GENERIC = Platform("csv", "Other CSV (columns guessed from their names)")
PLATFORMS = {platform.key: platform for platform in (MAILCHIMP, SUBSTACK, BUTTONDOWN, GHOST, LISTMONK, NATIVE,
                                                      GENERIC)}
CHOICES = ("auto", *PLATFORMS)  # `--from`, the API's `platform`

# Common names for a target in files of no known platform (casefolded, spaces and dashes as "_").
GUESSES = {
    "email": "email", "e_mail": "email", "email_address": "email", "mail": "email",
    "name": "name", "full_name": "name", "first_name": "first_name", "firstname": "first_name",
    "fname": "first_name", "last_name": "last_name", "lastname": "last_name", "lname": "last_name",
    "topics": "topics", "categories": "topics", "status": "status", "created_at": "created_at",
    "created": "created_at", "joined": "created_at", "join_date": "created_at", "subscribed_at": "created_at",
    "signup_date": "created_at", "confirmed_at": "confirmed_at", "unsubscribed_at": "unsubscribed_at",
}
GENERIC_STATUSES = {"active": "active", "subscribed": "active", "enabled": "active", "unsubscribed": "unsubscribed",
                    "disabled": "unsubscribed", "blocklisted": "unsubscribed", "bounced": "bounced",
                    "cleaned": "bounced", "complained": "complained", "pending": "pending",
                    "unconfirmed": "pending"}


def _key(name: str) -> str:
    return name.strip().casefold()


def detect(header: list[str]) -> Platform:
    """The platform whose export has this header; our own export format; else GENERIC."""
    names = {_key(name) for name in header}
    for platform in (MAILCHIMP, BUTTONDOWN, GHOST, LISTMONK, SUBSTACK):
        if platform.markers <= names:
            return platform
    if "email" in names and names <= set(NATIVE.columns):
        return NATIVE
    return GENERIC


def default_mapping(platform: Platform, header: list[str]) -> dict[str, str]:
    """Each header name -> its target: the platform's, else a guess from the name, else ignore.
    A target is given to its first column only (a file with two "email" columns maps one)."""
    mapping, taken = {}, set()
    for name in header:
        target = platform.columns.get(_key(name))
        if target is None and platform in (GENERIC, NATIVE):
            target = GUESSES.get(_key(name).replace(" ", "_").replace("-", "_"))
        if target is None or target in taken:
            target = "ignore"
        taken.add(target)
        mapping[name] = target
    return mapping


def translate_status(platform: Platform, value: str) -> tuple[str, str]:
    """(our status, "") or ("", why this row is left out). Unknown values pass through, lower-cased,
    so the importer's own rule names them and lists the statuses it takes."""
    key = _key(value)
    if key in platform.refused:
        return "", platform.refused[key]
    table = platform.statuses or GENERIC_STATUSES
    return table.get(key, GENERIC_STATUSES.get(key, key)), ""
