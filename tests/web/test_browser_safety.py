"""Issue 14.4: browser safety — headers on every page, allowed hosts, cross-site form posts refused."""

import base64
import hashlib
import re

import pytest
import requests
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.web.abuse import visitor_cookie
from newsletter.subscribers.models import Subscriber
from newsletter.tokens import Purpose
from tests.conftest import link_token

EMBEDDER = "https://blog.example"


def csp(response) -> dict[str, str]:
    return {part.strip().split(" ", 1)[0]: part.strip().split(" ", 1)[1]
            for part in response.headers["content-security-policy"].split(";")}


def signed_up(live, email) -> bool:
    """Whether a subscriber row exists for `email` (a refused post must leave none)."""
    with session_scope(live.engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == email)).first() is not None


def test_every_page_sends_the_security_headers(live_factory, db_url):
    live = live_factory(db_url, WEB__EMBED_ORIGINS=f'["{EMBEDDER}"]')
    with session_scope(live.engine) as session:
        reader = Subscriber(email="hdr@example.com", status="active")
        session.add(reader)
        session.flush()
        reader_id = reader.id
    prefs = f"/preferences/{link_token(live.engine, Purpose.preferences, reader_id)}"
    pages = {"/": 200, "/embed": 200, prefs: 200, "/compare/nope": 404, "/issues/99": 404, "/healthz": 200,
             "/no/such/page": 404, "/confirm/x.y": 400, "/issues/x": 422}
    for path, status in pages.items():
        response = live.http.get(live.url + path)
        assert response.status_code == status, path
        policy = csp(response)
        assert policy["default-src"] == "'self'" and policy["script-src"] == "'none'", path
        assert policy["form-action"] == f"'self' {live.url}" and policy["object-src"] == "'none'", path
        assert response.headers["x-content-type-options"] == "nosniff", path
        token_page = path.startswith(("/preferences/", "/confirm/"))
        assert response.headers["referrer-policy"] == ("no-referrer" if token_page
                                                       else "strict-origin-when-cross-origin"), path
        if path == "/embed":
            assert policy["frame-ancestors"] == f"'self' {EMBEDDER}" and "x-frame-options" not in response.headers
        else:
            assert policy["frame-ancestors"] == "'none'" and response.headers["x-frame-options"] == "DENY", path
        if path.startswith("/issues/"):  # the web view is mail HTML: inline styles by design, no scripts
            assert policy["style-src"] == "'self' 'unsafe-inline'"
            continue
        # The page's own <style> block is allowed by its hash, nothing else inline.
        for block in re.findall(r"<style[^>]*>(.*?)</style>", response.text, re.S):
            digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy["style-src"], path
        assert "'unsafe-inline'" not in policy["style-src"], path
        assert ' style="' not in response.text, path  # inline style attributes would be blocked
    webhook = live.http.post(live.url + "/webhooks/nope", data=b"{}")
    assert webhook.status_code == 404 and webhook.headers["x-content-type-options"] == "nosniff"


def test_unknown_host_headers_are_refused(live_factory, db_url):
    live = live_factory(db_url, WEB__ALLOWED_HOSTS='["www.verdicts.example"]')
    assert requests.get(live.url + "/healthz", headers={"Host": "evil.example"}).status_code == 400
    assert requests.get(live.url + "/", headers={"Host": "evil.example:8000"}).status_code == 400
    assert requests.get(live.url + "/healthz", headers={"Host": "www.verdicts.example"}).text == "ok"
    assert requests.get(live.url + "/healthz").text == "ok"  # base_url's own host


def test_cross_site_posts_are_refused_with_a_clear_page(live_factory, db_url):
    live = live_factory(db_url, WEB__EMBED_ORIGINS=f'["{EMBEDDER}"]')
    token = live.form_token()  # the session now holds the visitor cookie the token is bound to

    def post(email, headers=None, session=live.http, form_token=token):
        return session.post(live.url + "/subscribe", data={"form_token": form_token, "email": email},
                            headers=headers or {})

    for n, headers in enumerate([{"Origin": "https://evil.example"}, {"Origin": "null"},
                                 {"Referer": "https://evil.example/page"},
                                 {"Origin": "http://127.0.0.1.evil.example"}]):
        refused = post(f"x{n}@example.com", headers)
        assert refused.status_code == 403, headers
        assert "This form cannot be sent from here" in refused.text and "Traceback" not in refused.text
        assert not signed_up(live, f"x{n}@example.com")
    # Another browser (no cookie, or its own cookie) cannot use this visitor's token.
    stranger = requests.Session()
    stranger.get(live.url + "/")
    for session in (requests.Session(), stranger):
        refused = post("stolen@example.com", session=session)
        assert refused.status_code == 403 and "not loaded in this browser" in refused.text
    assert not signed_up(live, "stolen@example.com")
    # Our own page and a configured embedding site are accepted.
    assert post("own@example.com", {"Origin": live.url}).status_code == 200
    assert post("embed@example.com", {"Origin": EMBEDDER}).status_code == 200
    assert post("plain@example.com").status_code == 200  # no Origin (curl): the bound token still holds
    assert all(signed_up(live, f"{who}@example.com") for who in ("own", "embed", "plain"))


def test_the_embed_cookie_works_in_third_party_frames():
    embed = visitor_cookie("v" * 24, 7200, https=True, embed=True)
    assert {"HttpOnly", "Secure", "SameSite=None", "Partitioned", "Path=/"} <= set(embed.split("; "))
    page = visitor_cookie("v" * 24, 7200, https=True, embed=False)
    assert {"HttpOnly", "Secure", "SameSite=Lax"} <= set(page.split("; "))
    # On plain http (development) a SameSite=None cookie would be dropped: Lax, not Secure.
    assert "SameSite=Lax" in visitor_cookie("v" * 24, 7200, https=False, embed=True)


@pytest.mark.parametrize("limit", ["READER", "IP"])
def test_address_changes_are_throttled_per_reader_and_per_ip(live_factory, db_url, limit):
    live = live_factory(db_url, **{f"WEB__ADDRESS_CHANGES_PER_{limit}_PER_HOUR": 2})
    readers = []
    with session_scope(live.engine) as session:
        for n in range(3):
            reader = Subscriber(email=f"mover{n}@example.com", status="active")
            session.add(reader)
            session.flush()
            readers.append(reader.id)
    # Per reader: one link, many addresses; per IP: one client, many readers' links.
    links = [readers[0]] * 3 if limit == "READER" else readers
    answers = [live.http.post(f"{live.url}/preferences/{link_token(live.engine, Purpose.preferences, reader)}",
                              data={"action": "change_email", "new_email": f"target{n}@example.com"})
               for n, reader in enumerate(links)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) > 60 and "Too many address changes" in answers[2].text
    assert live.deliver_mail() == 2 and {m["To"] for m in live.mails()} == {"target0@example.com",
                                                                           "target1@example.com"}


def test_bad_embed_origins_and_hosts_are_named_in_the_error():
    from pydantic import ValidationError

    from newsletter.config import WebSettings

    for field, value in (("embed_origins", ["blog.example"]), ("embed_origins", ["https://blog.example/page"]),
                         ("allowed_hosts", ["https://www.example"])):
        with pytest.raises(ValidationError, match=field):
            WebSettings(**{field: value})
    assert WebSettings(embed_origins=["https://Blog.example/"]).embed_origins == ["https://blog.example"]
    assert WebSettings(trust_forwarded_for=True).trusted_proxy_hops == 1  # the deprecated alias
    assert WebSettings(trust_forwarded_for=True, trusted_proxy_hops=2).trusted_proxy_hops == 2


def test_style_blocks_are_found_as_the_pattern_finds_them():
    """style_blocks replaced a case-insensitive regex on every answer (issue 18): same blocks."""
    import random
    import re

    from newsletter.web.security import style_blocks

    pattern = re.compile(rb"<style[^>]*>(.*?)</style>", re.S | re.I)  # the regex it replaced

    pieces = [b"<style>", b"<STYLE media=x>", b"</style>", b"</StYlE>", b"a{b:c}", b">", b"<", b"x", b"<styles>",
              b"\n", b"</style", b"<style"]
    rng = random.Random(18)
    for _ in range(5000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert style_blocks(body) == pattern.findall(body), body


def test_remembered_headers_are_those_of_the_path_kind_and_body(tmp_path):
    """SecurityHeaders remembers its headers per (path kind, body) (issue 18): the same answer page
    under an embeddable path and a plain one still gets each its own frame rules, and a
    remembered answer equals a freshly built one."""
    from newsletter.config import load_settings
    from newsletter.web.security import SecurityHeaders, security_headers
    from tests.conftest import write_config

    settings = load_settings(write_config(tmp_path))
    middleware = SecurityHeaders(app=None, settings=settings)
    body = b"<html><style>p{color:red}</style><p>Check your inbox</p></html>"
    for path in ("/subscribe", "/", "/unsubscribe/abc", "/subscribe", "/"):
        assert middleware.headers_for(path, body) == security_headers(settings, path, body)
    embedded, plain = dict(middleware.headers_for("/subscribe", body)), dict(middleware.headers_for("/", body))
    assert b"x-frame-options" not in embedded and plain[b"x-frame-options"] == b"DENY"
    assert b"frame-ancestors 'self'" in embedded[b"content-security-policy"]
    assert b"frame-ancestors 'none'" in plain[b"content-security-policy"]
