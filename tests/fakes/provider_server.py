"""A real local HTTP server standing in for the providers' documented send APIs.

`ProviderServer("postmark", token=...)` listens on 127.0.0.1 at a free port in a
thread. Per provider it checks the credentials the way the real API does (a
SigV4 signature is recomputed from the test's secret), validates the request
shape, records every request, and answers like the documentation says.

Tests steer it with:
- `server.respond(status, body, headers, times)`: the next requests get this canned
  answer (429 with Retry-After, 500, ...); they are still recorded.
- `server.rejects[address] = value`: a per-message error for that recipient
  (Postmark: an ErrorCode; the others: a reason).
and read `server.requests` (everything received) and `server.accepted` (one
entry per message the "provider" took, with the id it handed out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from newsletter.mail.message import OutgoingMessage
from newsletter.mail.headers import header_line
from newsletter.mail.mime import message_template
from newsletter.mail.slots import SlotMarker

# --- requests and answers -------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Accepted:
    to: str  # the recipient address
    id: str  # the provider id handed out
    fields: dict[str, Any]  # what the provider got for this message (JSON item, form fields, ...)
    mime: bytes | None = None  # the raw message, for the raw-MIME APIs


@dataclass
class Answer:
    status: int
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)


def _encode(body: Any) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "text/plain"
    if isinstance(body, str):
        return body.encode(), "text/plain"
    return json.dumps(body).encode(), "application/json"


# --- AWS Signature Version 4, written from the specification (independent of the signer) ---------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sigv4_signature(method: str, path: str, query: str, headers: dict[str, str], signed: list[str],
                    payload_hash: str, secret: str, amz_date: str, region: str, service: str) -> str:
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(parse_qsl(query, keep_blank_values=True))
    )
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed)
    canonical_request = "\n".join(
        [method, path or "/", canonical_query, canonical_headers, ";".join(signed), payload_hash])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), amz_date[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                   r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
                   r"Signature=(?P<signature>[0-9a-f]{64})")


def verify_sigv4(request: Received, query: str, access_key: str, secret: str, region: str,
                 service: str) -> str | None:
    """None when the request is correctly signed, else what is wrong."""
    match = _AUTH.fullmatch(request.headers.get("authorization", ""))
    if not match:
        return "IncompleteSignatureException: Authorization is not AWS4-HMAC-SHA256 Credential=..., " \
               "SignedHeaders=..., Signature=..."
    if match["key"] != access_key:
        return "UnrecognizedClientException: the security token included in the request is invalid"
    if (match["region"], match["service"]) != (region, service):
        return f"SignatureDoesNotMatch: credential scope {match['region']}/{match['service']} is not " \
               f"{region}/{service}"
    amz_date = request.headers.get("x-amz-date", "")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date) or amz_date[:8] != match["date"]:
        return "IncompleteSignatureException: x-amz-date missing or not the credential date"
    skew = abs((datetime.now(UTC) - datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
               .total_seconds())
    if skew > 300:
        return "InvalidSignatureException: signature expired"
    signed = match["signed"].split(";")
    if signed != sorted(signed) or not {"host", "x-amz-date"} <= set(signed):
        return "IncompleteSignatureException: SignedHeaders must be sorted and include host and x-amz-date"
    if any(name not in request.headers for name in signed):
        return "IncompleteSignatureException: a signed header is missing"
    payload_hash = hashlib.sha256(request.body).hexdigest()
    if request.headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        return "SignatureDoesNotMatch: x-amz-content-sha256 is not the body's hash"
    expected = sigv4_signature(request.method, request.path, query, request.headers, signed, payload_hash,
                               secret, amz_date, region, service)
    if not hmac.compare_digest(expected, match["signature"]):
        return "SignatureDoesNotMatch: the request signature we calculated does not match"
    return None


def _form_fields(content_type: str, body: bytes) -> dict[str, Any]:
    """multipart/form-data (RFC 7578), byte-exact: name -> text, or (filename, bytes) for a file."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if not boundary:
        return {}
    fields: dict[str, Any] = {}
    delimiter = b"\r\n--" + boundary.group(1).encode()
    for chunk in (b"\r\n" + body).split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        head, _, value = chunk[2:].partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name:
            fields[name.group(1).decode()] = (filename.group(1).decode(), value) if filename else value.decode()
    return fields


# --- the server -----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        server: ProviderServer = self.server.provider  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        split = urlsplit(self.path)
        request = Received("POST", split.path, {k.lower(): v for k, v in self.headers.items()},
                           self.rfile.read(length))
        answer = server.handle(request, split.query)
        body, content_type = _encode(answer.body)
        self.send_response(answer.status)
        headers = {"Content-Type": content_type, **answer.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ProviderServer:
    def __init__(self, provider: str, *, token: str = "", api_key: str = "", domain: str = "",
                 access_key: str = "", secret: str = "", region: str = "eu-west-1") -> None:
        self.provider = provider
        self.token, self.api_key, self.domain = token, api_key, domain
        self.access_key, self.secret, self.region = access_key, secret, region
        self.requests: list[Received] = []
        self.accepted: list[Accepted] = []
        self.rejects: dict[str, Any] = {}
        self.canned: deque[Answer] = deque()
        self.idempotency: dict[str, tuple[str, Answer]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.provider = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def respond(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                times: int = 1) -> None:
        for _ in range(times):
            self.canned.append(Answer(status, {"message": f"canned {status}"} if body is None else body,
                                      headers or {}))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):05d}"

    def handle(self, request: Received, query: str) -> Answer:
        with self._lock:  # one at a time: the recorded order is the arrival order
            self.requests.append(request)
            if self.canned:
                return self.canned.popleft()
            return getattr(self, f"_{self.provider}")(request, query)

    # -- Postmark: POST /email/batch -------------------------------------------------------------

    def _postmark(self, request: Received, query: str) -> Answer:
        if request.path != "/email/batch":
            return Answer(404, {"ErrorCode": 404, "Message": "not found"})
        if not self.token or request.headers.get("x-postmark-server-token") != self.token:
            return Answer(401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."})
        if "application/json" not in request.headers.get("content-type", ""):
            return Answer(422, {"ErrorCode": 409, "Message": "JSON required."})
        try:
            batch = request.json
        except ValueError:
            return Answer(422, {"ErrorCode": 402, "Message": "Received invalid JSON input."})
        if not isinstance(batch, list):
            return Answer(422, {"ErrorCode": 403, "Message": "Incompatible JSON input."})
        if len(batch) > 500:
            return Answer(422, {"ErrorCode": 410, "Message": "Too many batch messages (max 500)."})
        answers = []
        for message in batch:
            missing = [k for k in ("From", "To", "Subject", "MessageStream") if not message.get(k)]
            if not (message.get("HtmlBody") or message.get("TextBody")):
                missing.append("HtmlBody or TextBody")
            address = parseaddr(message.get("To", ""))[1]
            if missing:
                answers.append({"ErrorCode": 300, "Message": f"Invalid email request: {', '.join(missing)}"})
            elif address in self.rejects:
                answers.append({"ErrorCode": self.rejects[address], "To": message["To"],
                                "Message": f"You tried to send to recipient(s) that have been marked as "
                                           f"inactive. Found inactive addresses: {address}."})
            else:
                message_id = self.new_id("pm")
                self.accepted.append(Accepted(address, message_id, message))
                answers.append({"ErrorCode": 0, "Message": "OK", "MessageID": message_id, "To": message["To"],
                                "SubmittedAt": datetime.now(UTC).isoformat()})
        return Answer(200, answers)

    # -- SendGrid: POST /v3/mail/send ------------------------------------------------------------

    def _sendgrid(self, request: Received, query: str) -> Answer:
        def error(status: int, message: str, field_name: str | None = None) -> Answer:
            return Answer(status, {"errors": [{"message": message, "field": field_name, "help": None}]})

        if request.path != "/v3/mail/send":
            return error(404, "not found")
        if not self.api_key or request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "The provided authorization grant is invalid, expired, or revoked")
        try:
            payload = request.json
        except ValueError:
            return error(400, "Bad Request")
        personalizations = payload.get("personalizations") or []
        if not personalizations or not all(p.get("to") for p in personalizations):
            return error(400, "The personalizations field is required.", "personalizations")
        if len(personalizations) > 1000:
            return error(400, "The personalizations field must have 1000 or fewer items.", "personalizations")
        if not payload.get("from", {}).get("email"):
            return error(400, "The from object must be provided for every email send.", "from")
        if not payload.get("subject"):
            return error(400, "The subject is required.", "subject")
        content = payload.get("content") or []
        if not content or (len(content) > 1 and content[0].get("type") != "text/plain"):
            return error(400, "The text/plain content type must be first.", "content")
        for n, personalization in enumerate(personalizations):
            for name in ("headers", "custom_args", "substitutions"):
                if not all(isinstance(v, str) for v in personalization.get(name, {}).values()):
                    return error(400, f"{name} values must be strings", f"personalizations.{n}.{name}")
            substitutions = personalization.get("substitutions", {})
            if sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items()) > 10_000:
                return error(400, "Substitutions may not exceed 10000 bytes per personalization.",
                             f"personalizations.{n}.substitutions")
            address = personalization["to"][0].get("email", "")
            if address in self.rejects:  # SendGrid refuses the whole request
                return error(400, str(self.rejects[address]), f"personalizations.{n}.to.0.email")
        for name in ("headers", "custom_args"):
            if not all(isinstance(v, str) for v in payload.get(name, {}).values()):
                return error(400, f"{name} values must be strings", name)
        message_id = self.new_id("sg")
        for personalization in personalizations:
            # What this reader gets: the content with their substitutions made (SendGrid's
            # substitutions are plain string replacements), as a one-reader payload.
            def substitute(value: str, table=personalization.get("substitutions", {})) -> str:
                for tag, replacement in table.items():
                    value = value.replace(tag, replacement)
                return value

            fields = {**payload, "personalizations": [personalization],
                      "content": [{**c, "value": substitute(c["value"])} for c in content],
                      "subject": substitute(payload["subject"])}
            self.accepted.append(Accepted(personalization["to"][0]["email"], message_id, fields))
        return Answer(202, b"", {"X-Message-Id": message_id})

    # -- Mailgun: POST /v3/{domain}/messages.mime (multipart form) --------------------------------

    def _mailgun(self, request: Received, query: str) -> Answer:
        if request.path != f"/v3/{self.domain}/messages.mime":
            return Answer(404, {"message": "Domain not found"})
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        if not self.api_key or request.headers.get("authorization") != expected:
            return Answer(401, "Forbidden")
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return Answer(400, {"message": "multipart/form-data expected"})
        fields = _form_fields(content_type, request.body)
        if "to" not in fields:
            return Answer(400, {"message": "to parameter is missing"})
        if not isinstance(fields.get("message"), tuple):
            return Answer(400, {"message": "Need at least one message part (the 'message' file)"})
        if fields["to"] in self.rejects:
            return Answer(400, {"message": "to parameter is not a valid address. please check documentation"})
        message_id = self.new_id("mg")
        self.accepted.append(Accepted(fields["to"], message_id, fields, mime=fields["message"][1]))
        return Answer(200, {"id": f"<{message_id}@{self.domain}>", "message": "Queued. Thank you."})

    # -- Resend: POST /emails/batch ----------------------------------------------------------------

    def _resend(self, request: Received, query: str) -> Answer:
        def error(status: int, name: str, message: str) -> Answer:
            return Answer(status, {"statusCode": status, "name": name, "message": message})

        if request.path != "/emails/batch":
            return error(404, "not_found", "not found")
        if not self.api_key or request.headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "missing_api_key" if "authorization" not in request.headers
                         else "invalid_api_key", "API key is invalid")
        key = request.headers.get("idempotency-key")
        digest = hashlib.sha256(request.body).hexdigest()
        if key is not None:
            if not 1 <= len(key) <= 256:
                return error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
            if key in self.idempotency:
                seen_digest, seen_answer = self.idempotency[key]
                if seen_digest != digest:
                    return error(409, "invalid_idempotent_request",
                                 "Same idempotency key used with a different request payload.")
                return seen_answer  # replayed: nothing is sent again
        try:
            batch = request.json
        except ValueError:
            return error(422, "validation_error", "Invalid JSON")
        if not isinstance(batch, list) or len(batch) > 100:
            return error(422, "validation_error", "The batch must be an array of at most 100 emails.")
        permissive = request.headers.get("x-batch-validation") == "permissive"
        problems: list[dict] = []
        for index, message in enumerate(batch):
            to = message.get("to")
            if not message.get("from") or not message.get("subject") or not (message.get("html")
                                                                               or message.get("text")):
                problems.append({"index": index, "message": "from, subject and html or text are required"})
            elif not isinstance(to, list) or not to:
                problems.append({"index": index, "message": "The `to` field must be an array."})
            elif parseaddr(to[0])[1] in self.rejects:
                problems.append({"index": index, "message": str(self.rejects[parseaddr(to[0])[1]])})
        if problems and not permissive:
            return error(422, "validation_error", problems[0]["message"])
        bad = {p["index"] for p in problems}
        data = []
        for index, message in enumerate(batch):
            if index not in bad:
                message_id = self.new_id("rs")
                self.accepted.append(Accepted(parseaddr(message["to"][0])[1], message_id, message))
                data.append({"id": message_id})
        answer = Answer(200, {"data": data, **({"errors": problems} if permissive else {})})
        if key is not None:
            self.idempotency[key] = (digest, answer)
        return answer

    # -- Amazon SES v2: POST /v2/email/outbound-emails, SigV4 -------------------------------------

    def _ses(self, request: Received, query: str) -> Answer:
        def error(status: int, kind: str, message: str) -> Answer:
            return Answer(status, {"message": message}, {"x-amzn-ErrorType": f"{kind}:http://internal/"})

        if request.path != "/v2/email/outbound-emails":
            return error(404, "NotFoundException", "not found")
        problem = verify_sigv4(request, query, self.access_key, self.secret, self.region, "ses")
        if problem:
            kind, _, message = problem.partition(": ")
            return error(403, kind, message)
        try:
            payload = request.json
            raw = base64.b64decode(payload["Content"]["Raw"]["Data"], validate=True)
            to = payload["Destination"]["ToAddresses"]
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, "BadRequestException", f"invalid request: {exc}")
        if not to or not payload.get("FromEmailAddress"):
            return error(400, "BadRequestException", "Destination and FromEmailAddress are required")
        if to[0] in self.rejects:
            return error(400, "MessageRejected", str(self.rejects[to[0]]))
        message_id = self.new_id("ses")
        self.accepted.append(Accepted(to[0], message_id, payload, mime=raw))
        return Answer(200, {"MessageId": message_id})


# --- messages -------------------------------------------------------------------------------------


FROM = "Weekly Verdicts <verdicts@weeklyverdicts.example>"


def small_messages(count: int, domain: str = "example.com", start: int = 0) -> list[OutgoingMessage]:
    """`count` small but complete messages, assembled by the project's MIME code
    (newsletter.mail.mime) with the headers an issue message has."""
    marker = SlotMarker()
    text = marker.split(f"Hello {marker('email')}\nUnsubscribe: {marker('unsubscribe_url')}\n")
    html = marker.split(f"<p>Hello {marker('email')}</p><a href=\"{marker('unsubscribe_url')}\">Unsubscribe</a>")
    template = message_template(
        [header_line("From", FROM), header_line("Subject", "This week's verdicts"),
         header_line("List-Id", '"Weekly Verdicts" <weekly-verdicts.weeklyverdicts.example>')],
        text, html)
    messages = []
    for n in range(start, start + count):
        email, reference = f"reader{n}@{domain}", f"i1-d{n}"
        unsubscribe = f"https://verdicts.example/unsubscribe/tok{n}"
        personal = [
            header_line("To", email),
            header_line("Date", "Thu, 26 Nov 2026 08:00:00 +0000"),
            header_line("Message-ID", f"<{reference}.abc@weeklyverdicts.example>"),
            header_line("List-Unsubscribe", f"<{unsubscribe}>"),
            header_line("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            header_line("X-Weekly-Verdicts-Delivery", reference),
        ]
        data, _ = template.render(personal, {"email": email, "unsubscribe_url": unsubscribe})
        messages.append(OutgoingMessage("verdicts@weeklyverdicts.example", email, data, reference))
    return messages


def parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(data)  # type: ignore[return-value]


NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def project_messages(folder, readers: list[tuple[str, str]]) -> list[OutgoingMessage]:
    """Issue messages exactly as the pipeline builds them (newsletter.issues.links, newsletter.mail.compose), for
    (email, name) readers, with a small compiled issue instead of the MJML render."""
    from newsletter.config import load_settings
    from newsletter.issues.links import IssueRecipient, issue_message
    from newsletter.mail.compose import build_template
    from newsletter.mail.compile import CompiledEmail
    from tests.conftest import TEST_SECRET, write_config

    settings = load_settings(write_config(folder))
    marker = SlotMarker()
    html = marker.split(f"<p>Hi {marker('email')} — this week: Claude vs Gemini</p>"
                        f"<a href=\"{marker('unsubscribe_url')}\">Unsubscribe</a>"
                        f"<a href=\"{marker('preferences_url')}\">Preferences</a>")
    text = marker.split(f"Hi {marker('email')} — this week: Claude vs Gemini\n"
                        f"Unsubscribe: {marker('unsubscribe_url')}\nPreferences: {marker('preferences_url')}\n")
    template = build_template(settings, CompiledEmail("Weekly Verdicts — Claude vs Gemini", html, text))
    return [issue_message(settings, TEST_SECRET, template, IssueRecipient(email, name, n, f"i7-d{n}"), NOW)[0]
            for n, (email, name) in enumerate(readers, start=1)]
