"""`newsletter serve` as an operator runs it: one process, pages and confirmation mail."""

import os
import re
import signal
import subprocess
import sys
import time

import requests

from tests.conftest import write_config
from tests.fakes.smtp_server import free_port


def test_one_serve_process_is_a_working_deployment(tmp_path):
    port = free_port()
    write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_SECRET_KEY="s" * 40, NEWSLETTER_SITE__BASE_URL=f"http://127.0.0.1:{port}",
               NEWSLETTER_WEB__FORM_MIN_SECONDS="0")
    subprocess.run([sys.executable, "-m", "newsletter", "db", "upgrade"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "newsletter", "serve", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, "server did not start"
            time.sleep(0.2)
        browser = requests.Session()  # keeps the visitor cookie the form token is bound to
        form = browser.get(base + "/").text
        token = re.search(r'name="form_token" value="([^"]+)"', form).group(1)
        answer = browser.post(base + "/subscribe", data={"form_token": token, "email": "op@example.com"},
                              headers={"Origin": base})
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        embed = requests.get(base + "/embed")
        assert embed.status_code == 200 and "x-frame-options" not in embed.headers
        assert requests.get(base + "/").headers["x-frame-options"] == "DENY"
        # The default configuration also answers as localhost; a foreign Host header gets 400.
        assert requests.get(f"http://localhost:{port}/healthz").text == "ok"
        assert requests.get(base + "/healthz", headers={"Host": "evil.example"}).status_code == 400
        outbox = tmp_path / "outbox"
        deadline = time.time() + 30
        while not list(outbox.glob("*.eml")) and time.time() < deadline:
            time.sleep(0.2)
        mails = list(outbox.glob("*.eml"))
        assert len(mails) == 1 and b"/confirm/" in mails[0].read_bytes()
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=20)[0].decode()
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "Traceback" not in output
