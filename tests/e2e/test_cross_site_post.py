"""Issue 14.4 in a real browser: another site cannot post our signup form through a visitor."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import expect

from tests.fakes.smtp_server import free_port
from tests.web.conftest import live_factory  # noqa: F401  (fixture)
from tests.web.test_browser_safety import signed_up


class _Attacker(BaseHTTPRequestHandler):
    """Another site: a page that posts our signup form (with a token it fetched) on load."""

    target = ""
    token = ""

    def do_GET(self):  # noqa: N802
        body = (f'<form id="f" method="post" action="{self.target}/subscribe">'
                f'<input name="form_token" value="{self.token}"><input name="email" value="victim@example.com">'
                f'</form><script>document.getElementById("f").submit()</script>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


def test_another_site_cannot_post_signups_through_a_visitors_browser(chromium, live_factory, db_url):  # noqa: F811
    live = live_factory(db_url)
    _Attacker.target, _Attacker.token = live.url, live.form_token()  # a genuine token, fetched by the attacker
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = chromium.new_page()
        page.goto(live.url + "/")  # the victim has our cookie too
        page.goto(f"http://localhost:{server.server_port}/")  # another site
        page.wait_for_url(f"{live.url}/subscribe")
        page.wait_for_load_state()
        expect(page.get_by_role("heading", name="This form cannot be sent from here")).to_be_visible()
        page.close()
    finally:
        server.shutdown()
    assert not signed_up(live, "victim@example.com")
