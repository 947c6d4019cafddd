"""Hard or soft: the one classification of a failed delivery, for every path that reports one
(the bounce mailbox, SMTP replies in the SMTP transport, each provider's webhook).

Why one function: the same Gmail "550 5.7.1 ... likely unsolicited" block once suppressed a
reader for good when it came back as a bounce mail, while the webhooks counted it as soft. A
hard bounce ends a reader's subscription, so only evidence that the address itself is gone is
hard; anything about the message, the sender's reputation or a full mailbox is soft (counted,
and `[feedback] soft_bounce_limit` in a row suspend the address).

The evidence is read in order, the most specific first:

1. an enhanced status code (RFC 3463) in the status or the text: 4.x.x soft; 5.1.x hard
   (bad mailbox, bad domain); 5.2.2 (mailbox full), 5.2.3 / 5.3.4 (too big), 5.7.x (policy,
   spam, authentication), 5.6.x (content) soft; 5.2.1 (mailbox disabled) hard;
2. words in the text: mailbox full / quota / spam / policy / blocked / too large ... soft;
   unknown user / no such mailbox / does not exist / account disabled ... hard;
3. the provider's own verdict (Permanent, HardBounce, severity permanent ...);
4. a basic SMTP reply code: 4xx soft, 552 (storage exceeded) soft, other 5xx hard.

Nothing at all: soft (a reader is never dropped on no evidence).

Why it lives in delivery, not feedback: the SMTP transport (newsletter/delivery/transports/smtp.py)
classifies a refused recipient with it while sending, and feedback already imports
delivery.models; delivery importing feedback would make a package cycle. So feedback
(events.bounce_kind) imports it from here, and it imports nothing of ours.
"""

from __future__ import annotations

import re
from enum import StrEnum


class BounceClass(StrEnum):
    hard = "hard"
    soft = "soft"


HARD, SOFT = BounceClass.hard, BounceClass.soft

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_BASIC = re.compile(r"(?<![\d.#])([45]\d\d)(?![\d.])")
_SOFT_WORDS = re.compile(
    r"quota|mailbox (?:is )?full|mail ?folder is full|over ?quota|disk ?quota|storage|exceed|"
    r"spam|unsolicited|junk|blocked|block ?list|black ?list|blacklist|spamhaus|reputation|policy|"
    r"rate limit|too many (?:messages|connections|recipients)|try (?:again )?later|temporar|"
    r"too (?:large|big)|message size|size limit|unable to relay|relay(?:ing)? (?:denied|not permitted|access)|"
    r"virus|content rejected|dmarc|spf|dkim|greylist|graylist|timed? ?out|connection|loop|too many hops|"
    r"hop count", re.I)
_HARD_WORDS = re.compile(
    r"unknown (?:user|recipient|address|local|alias|mailbox)|user unknown|recipient unknown|"
    r"addressee unknown|no such (?:user|mailbox|address|recipient|person)|no mailbox|"
    r"(?:does not|doesn't|did not) exist|not exist|invalid (?:recipient|mailbox|address|user|final delivery)|"
    r"user not found|mailbox not found|recipient not found|address rejected|mailbox unavailable|"
    r"account (?:has been )?(?:disabled|discontinued|closed|deleted|expired|inactive)|"
    r"disabled or discontinued|inactive|unrouteable|unroutable|bad destination|host unknown|"
    r"unknown host|domain (?:does not|not) exist|no such domain|illegal user", re.I)
# Provider words for "the address is gone" and "try again / not the address".
_PERMANENT = {"permanent", "hardbounce", "hard", "bademailaddress", "bounce", "suppress-bounce", "noemail",
              "suppressed", "onaccountsuppressionlist", "manuallydeactivated"}
_TEMPORARY = {"temporary", "transient", "softbounce", "soft", "undetermined", "blocked", "dnserror",
              "spamnotification", "contentrejected", "mailboxfull", "messagetoolarge", "attachmentrejected",
              "challengeverification", "autoresponder"}


def _by_enhanced(major: str, subject: str, detail: str) -> BounceClass | None:
    if major == "4":
        return SOFT
    if major != "5":
        return None
    if subject == "1":
        return HARD
    if subject == "2":
        return HARD if detail == "1" else SOFT
    if subject in ("3", "4", "5"):
        return SOFT if (subject, detail) in (("3", "4"), ("4", "7")) else None  # 5.4.x, 5.5.x: see words
    if subject in ("6", "7"):
        return SOFT
    return None  # 5.0.0 and the like say nothing: read the words


def enhanced_status(*texts: str | None) -> str | None:
    """The first enhanced status code (X.Y.Z) in the texts, e.g. "5.7.1"."""
    for text in texts:
        match = _ENHANCED.search(text or "")
        if match:
            return ".".join(match.groups())
    return None


def explains(status: str | None, text: str = "") -> bool:
    """True when a status and text say why (a specific enhanced code, or words of either class);
    False for e.g. "5.0.0" with "smtp; 550", when the caller may look for more words."""
    code = enhanced_status(status, text)
    if code and _by_enhanced(*code.split(".")) is not None:
        return True
    return bool(text and (_SOFT_WORDS.search(text) or _HARD_WORDS.search(text)))


def classify(status: str | None = None, text: str = "", provider: str | None = None,
             permanent: bool | None = None) -> BounceClass:
    """Hard or soft, from an enhanced `status` (or a basic reply code), the server's `text`, the
    provider's own type or severity (`provider`, e.g. "Permanent", "HardBounce") and, for a
    detector that only knows "gave up" vs "still trying", `permanent`."""
    code = enhanced_status(status, text)
    if code:
        verdict = _by_enhanced(*code.split("."))
        if verdict is not None:
            return verdict
    if text and _SOFT_WORDS.search(text):
        return SOFT
    if text and _HARD_WORDS.search(text):
        return HARD
    kind = re.sub(r"[\s_]", "", (provider or "")).lower()
    if kind in _PERMANENT:
        return HARD
    if kind in _TEMPORARY:
        return SOFT
    basic = _BASIC.search(f"{status or ''} {text or ''}")
    if basic:
        return SOFT if basic.group(1).startswith("4") or basic.group(1) == "552" else HARD
    if code:
        return HARD if code.startswith("5") else SOFT
    if permanent is not None:
        return HARD if permanent else SOFT
    return SOFT
