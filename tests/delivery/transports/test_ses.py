import base64
import hashlib
import json
import re

import pytest
import requests
from pydantic import SecretStr

from newsletter.config import SesSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.ses import SesTransport
from newsletter.errors import ConfigError
from tests.fakes.provider_server import (ProviderServer, parse, project_messages, sigv4_signature,
                                              small_messages)

ACCESS_KEY = "AKIDTESTWEEKLYVERDICTS"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYTESTKEY"
REGION = "eu-west-1"
READERS = [("ann@example.com", "Ann Reader"), ("bob@example.com", ""), ("rejected@example.com", "")]


@pytest.fixture
def server():
    with ProviderServer("ses", access_key=ACCESS_KEY, secret=SECRET, region=REGION) as running:
        yield running


def transport(server, secret=SECRET, **settings):
    made = SesTransport(SesSettings(access_key_id=SecretStr(ACCESS_KEY), secret_access_key=SecretStr(secret),
                                    region=REGION, base_url=server.url, **settings))
    made.retry_delays = (0.01, 0.01)
    return made


def test_the_server_checks_signatures_as_aws_documents_them():
    """The verifier is our own reading of the SigV4 specification; it must reproduce AWS's
    published test-suite signatures (get-vanilla, post-vanilla) before it can judge the signer."""
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}
    args = (headers, ["host", "x-amz-date"], empty, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830T123600Z", "us-east-1", "service")
    assert sigv4_signature("GET", "/", "", *args) == \
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    assert sigv4_signature("POST", "/", "", *args) == \
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"


def test_raw_messages_signed_with_sigv4(server, tmp_path):
    messages = project_messages(tmp_path, READERS)
    server.rejects["rejected@example.com"] = "Email address is not verified."
    results = transport(server, configuration_set="newsletter").send(messages)

    # The server recomputed each signature with SECRET: a success is a verified signature.
    assert [r.outcome for r in results] == [Outcome.sent, Outcome.sent, Outcome.failed]
    assert [r.provider_id for r in results[:2]] == [a.id for a in server.accepted]
    assert "MessageRejected" in results[2].error and "not verified" in results[2].error
    assert not results[2].hard_bounce

    request = server.requests[0]
    assert request.path == "/v2/email/outbound-emails"
    match = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=(\S+), SignedHeaders=(\S+), Signature=([0-9a-f]{64})",
                         request.headers["authorization"])
    assert match, request.headers["authorization"]
    key_id, date, region, service, terminator = match[1].split("/")
    assert (key_id, region, service, terminator) == (ACCESS_KEY, REGION, "ses", "aws4_request")
    assert date == request.headers["x-amz-date"][:8]
    assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(match[2].split(";"))
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(request.body).hexdigest()

    payload = request.json
    assert base64.b64decode(payload["Content"]["Raw"]["Data"]) == messages[0].data
    assert payload["FromEmailAddress"] == "verdicts@weeklyverdicts.example"
    assert payload["Destination"] == {"ToAddresses": ["ann@example.com"]}
    assert payload["EmailTags"] == [{"Name": "reference", "Value": messages[0].reference}]
    assert payload["ConfigurationSetName"] == "newsletter"
    sent = parse(server.accepted[0].mime)
    assert sent["List-Unsubscribe"].startswith("<https://verdicts.example/unsubscribe/")
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_wrong_secret_is_refused_by_the_signature_check(server):
    result = transport(server, secret="not-the-secret").send(small_messages(1))[0]
    assert result.outcome == Outcome.retry  # 403: an account problem, never a lost delivery
    assert "HTTP 403" in result.error and "SignatureDoesNotMatch" in result.error
    assert server.accepted == []


def test_a_tampered_body_is_refused(server):
    made = transport(server)
    original_post = made.session.post

    def tamper(url, data=None, **kwargs):  # sign the real body, then change it on the wire
        prepared = made.session.prepare_request(requests.Request(
            "POST", url, data=data, headers=kwargs.get("headers"), auth=kwargs.get("auth")))
        body = json.loads(prepared.body)
        body["Destination"]["ToAddresses"] = ["someone-else@example.com"]
        prepared.body = json.dumps(body).encode()
        prepared.headers["Content-Length"] = str(len(prepared.body))
        return made.session.send(prepared, timeout=kwargs.get("timeout"))

    made.session.post = tamper
    result = made.send(small_messages(1))[0]
    made.session.post = original_post
    assert result.outcome == Outcome.retry and "x-amz-content-sha256" in result.error


@pytest.mark.parametrize("status, kind, outcome", [
    (400, "SendingPausedException", Outcome.retry),
    (400, "LimitExceededException", Outcome.retry),
    (400, "BadRequestException", Outcome.failed),
    (500, "InternalFailure", Outcome.retry),
])
def test_error_types(server, status, kind, outcome):
    server.respond(status, {"message": "why"}, {"x-amzn-ErrorType": f"{kind}:http://internal/"}, times=3)
    result = transport(server).send(small_messages(1))[0]
    assert result.outcome == outcome and kind in result.error


def test_throttling_is_retry_with_retry_after(server):
    server.respond(429, {"message": "Maximum sending rate exceeded."},
                   {"x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "1"})
    results = transport(server).send(small_messages(3))
    assert len(server.requests) == 1
    assert {(r.outcome, r.retry_after) for r in results} == {(Outcome.retry, 1.0)}


def test_missing_credentials_are_a_config_error():
    with pytest.raises(ConfigError, match="NEWSLETTER_MAIL__SES__ACCESS_KEY_ID"):
        SesTransport(SesSettings(secret_access_key=SecretStr(SECRET)))
    with pytest.raises(ConfigError, match="NEWSLETTER_MAIL__SES__SECRET_ACCESS_KEY"):
        SesTransport(SesSettings(access_key_id=SecretStr(ACCESS_KEY)))
