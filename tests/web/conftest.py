"""A real uvicorn server on a free port, serving the app against the test database."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import requests
import uvicorn

from newsletter.config import Settings, load_settings
from newsletter.db import make_engine
from newsletter.delivery.mailqueue import send_pending
from newsletter.delivery.transports import make_transport
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET, write_config
from tests.db_templates import migrate_fresh, sample_content
from tests.fakes.smtp_server import free_port


@dataclass
class Live:
    url: str
    settings: Settings
    engine: object
    app: object
    http: requests.Session

    def form_token(self) -> str:
        page = self.http.get(self.url + "/").text
        return re.search(r'name="form_token" value="([^"]+)"', page).group(1)

    def subscribe(self, email: str, **fields) -> requests.Response:
        data = {"form_token": self.form_token(), "email": email, **fields}
        return self.http.post(self.url + "/subscribe", data=data, allow_redirects=False)

    def deliver_mail(self) -> int:
        transport = make_transport(self.settings)
        try:
            return send_pending(self.engine, self.settings, transport, TEST_SECRET)
        finally:
            transport.close()

    def mails(self) -> list:
        folder = self.settings.mail.file.dir
        files = sorted(folder.glob("t*.eml"), key=lambda p: int(p.stem[1:])) if folder.exists() else []
        return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]

    def link_in(self, mail, path: str) -> str:
        text = mail.get_body(("plain",)).get_content()
        return re.search(rf"(https?://\S+/{path}/\S+)", text).group(1)


def start_live(settings: Settings, engine, with_sender: bool = False, sender_process: bool = False):
    app = create_app(settings, engine=engine, secret=TEST_SECRET, with_sender=with_sender,
                     sender_process=sender_process)
    port = int(settings.site.base_url.rsplit(":", 1)[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return app, server, thread


@pytest.fixture
def live_factory(tmp_path, monkeypatch, request):
    servers = []

    def make(db_url: str | None = None, with_sender: bool = False, sender_process: bool = False, **env) -> Live:
        port = free_port()
        monkeypatch.setenv("NEWSLETTER_SITE__BASE_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("NEWSLETTER_WEB__FORM_MIN_SECONDS", "0")
        for key, value in env.items():
            monkeypatch.setenv(f"NEWSLETTER_{key}", str(value))
        settings = load_settings(write_config(tmp_path, db_url))
        engine = make_engine(settings.database.url)
        migrate_fresh(engine)
        sample_content(engine)
        app, server, thread = start_live(settings, engine, with_sender, sender_process)
        servers.append((server, thread, engine))
        return Live(settings.site.base_url, settings, engine, app, requests.Session())

    yield make
    for server, thread, engine in servers:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture
def live(live_factory, db_url):
    return live_factory(db_url)


__all__ = ["Live", "Path"]
