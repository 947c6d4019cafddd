"""The CLI as a user runs it: real processes (the demo, errors, help), a temporary folder, the default
file outbox; the editor flows run the same commands in this process (tests/cli_runner.py)."""

import json
import os
import sqlite3
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.conftest import write_config

PYTHON = sys.executable


def run(args, cwd, env_extra=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["COLUMNS"] = "200"  # rich tables fold cells at 80 columns when not on a terminal
    env.update(env_extra or {})
    result = subprocess.run([PYTHON, "-m", "newsletter", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def command(args, cwd, env_extra=None, check=True):
    """The same command in this process (tests/cli_runner.py): for tests about what the commands do,
    a dozen in a row; the process boundary stays covered by `run` above."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["COLUMNS"] = "200"
    env.update(env_extra or {})
    result = run_cli(args, cwd, env)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def test_demo_runs_the_whole_pipeline_and_is_safe_to_repeat(tmp_path):
    (tmp_path / "config.toml").write_text(
        (Path(__file__).resolve().parents[2] / "config.toml").read_text())
    first = run(["demo"], tmp_path)
    assert "Sent 6 messages" in first.stdout, first.stdout
    outbox = tmp_path / "var" / "outbox"
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 6
    assert (tmp_path / "var" / "newsletter.db").is_file()
    assert (tmp_path / "var" / "secret.key").is_file()
    preview = tmp_path / "var" / "preview" / "issue-1.html"
    assert preview.is_file() and "Read the full verdict" in preview.read_text()
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"].startswith("GroqCloud vs Together AI")
    assert parsed["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/")
    assert not list(outbox.glob(".tmp-*"))

    # Meanwhile a reader leaves and an editor corrects a comparison: a second demo (it runs on
    # whatever the config points at) must undo neither (an outside trial saw both undone).
    with sqlite3.connect(tmp_path / "var" / "newsletter.db") as db:
        db.execute("UPDATE subscriber SET status = 'unsubscribed' WHERE email = 'ada@example.com'")
        db.execute("UPDATE comparison SET dek = 'Corrected by the desk.' WHERE id = 1")
    second = run(["demo"], tmp_path)
    assert "already sent" in second.stdout
    assert len(list(outbox.glob("*.eml"))) == 6
    with sqlite3.connect(tmp_path / "var" / "newsletter.db") as db:
        assert db.execute("SELECT status FROM subscriber WHERE email = 'ada@example.com'").fetchone() == ("unsubscribed",)
        assert db.execute("SELECT dek FROM comparison WHERE id = 1").fetchone() == ("Corrected by the desk.",)
        assert db.execute("SELECT count(*) FROM consent_event WHERE kind = 'subscribed'").fetchone() == (6,)

    listing = run(["issue", "list"], tmp_path).stdout
    assert "2026-W48" in listing and "sent" in listing
    exported = run(["subscribers", "export", "--format", "csv"], tmp_path).stdout
    assert exported.splitlines()[0].startswith("email,name,status")
    assert len(exported.splitlines()) == 7


def test_editor_flow_draft_send_worker(tmp_path):
    write_config(tmp_path)
    env = {"NEWSLETTER_SECRET_KEY": "k" * 40}
    command(["db", "upgrade"], tmp_path, env)
    sample = Path(__file__).resolve().parents[2] / "newsletter" / "content" / "sample"
    out = command(["content", "import", *map(str, sorted(sample.glob("*.toml")))], tmp_path, env).stdout
    assert "5 new" in out
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email,name,topics\none@example.com,One,\ntwo@example.com,Two,Developer Tools\n")
    assert "2 new" in command(["subscribers", "import", str(csv_file), "--status", "active"], tmp_path, env).stdout
    drafted = command(["issue", "draft", "--week", "2026-W47"], tmp_path, env).stdout
    assert "drafted issue 1 for 2026-W47" in drafted
    sent = command(["issue", "send", "1", "--ignore-checks"], tmp_path, env).stdout  # the sample's week is old
    assert "sending to 1 subscriber" in sent and "subscribers" not in sent  # W47: no Developer Tools comparison
    assert command(["worker", "--until-idle"], tmp_path, env).stdout.startswith("issue 1: 1 sent")
    status = command(["issue", "status", "1"], tmp_path, env).stdout
    assert "sent" in status
    again = command(["issue", "send", "1", "--wait", "--ignore-checks"], tmp_path, env).stdout
    assert "already sent" in again
    # Scheduling a sent issue says it is sent, not its stale week check (outside trial).
    late = command(["issue", "schedule", "1", "--at", "2099-03-26 08:00"], tmp_path, env, check=False)
    assert late.returncode == 1 and "issue 1 is sent: only a draft or scheduled issue can be scheduled" in late.stderr
    assert "week" not in late.stderr, late.stderr
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    preview = command(["issue", "preview", "1", "--out", str(tmp_path / "pv")], tmp_path, env).stdout
    assert "issue-1.eml" in preview and (tmp_path / "pv" / "issue-1.txt").is_file()


@pytest.mark.parametrize(
    "args, env, expected",
    [
        (["issue", "list"], {"NEWSLETTER_MAIL__SMTP__PORT": "nope"}, "mail.smtp.port"),
        (["issue", "list"], {}, "newsletter db upgrade"),
        (["issue", "draft", "--week", "26-W1"], {}, "YYYY-Www"),
        (["--config", "/nonexistent.toml", "issue", "list"], {}, "does not exist"),
    ],
)
def test_errors_are_clear_and_never_a_stack_trace(tmp_path, args, env, expected):
    write_config(tmp_path)
    result = run(args, tmp_path, env, check=False)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_help_lists_the_commands(tmp_path):
    out = run(["--help"], tmp_path).stdout
    for command in ("demo", "db", "content", "issue", "subscribers", "worker"):
        assert command in out


def test_editor_commands(tmp_path):
    write_config(tmp_path, extra="\n[schedule]\nconfirm_over = 1\n")
    env = {"NEWSLETTER_SECRET_KEY": "k" * 40}
    command(["db", "upgrade"], tmp_path, env)
    sample = Path(__file__).resolve().parents[2] / "newsletter" / "content" / "sample"
    command(["content", "import", *map(str, sorted(sample.glob("*.toml")))], tmp_path, env)
    (tmp_path / "readers.csv").write_text("email\na@example.com\nb@example.com\n")
    command(["subscribers", "import", "readers.csv"], tmp_path, env)
    command(["issue", "draft", "--week", "2026-W47"], tmp_path, env)
    (tmp_path / "intro.txt").write_text("Three picks this week.\n\nThe video one surprised us.")
    command(["issue", "edit", "1", "--subject", "Video, images and data", "--intro-file", "intro.txt",
         "--subject-follows-reader"], tmp_path, env)
    command(["issue", "add", "1", "cursor-vs-windsurf"], tmp_path, env)
    command(["issue", "move", "1", "cursor-vs-windsurf", "1"], tmp_path, env)
    command(["issue", "remove", "1", "julius-ai-vs-hex-magic"], tmp_path, env)
    shown = command(["issue", "show", "1"], tmp_path, env).stdout
    assert "Video, images and data" in shown and "Three picks" in shown
    assert "follows each reader's first comparison" in shown
    assert shown.index("cursor-vs-windsurf") < shown.index("midjourney-vs-ideogram")
    assert "julius-ai-vs-hex-magic" not in shown
    # W47 is long past in 2099: the week check refuses unless overridden.
    old = command(["issue", "schedule", "1", "--at", "2099-03-26 08:00", "--tz", "Europe/Berlin"], tmp_path, env, check=False)
    assert old.returncode == 1 and "week: the issue is for 2026-W47" in old.stderr
    scheduled = command(["issue", "schedule", "1", "--at", "2099-03-26 08:00", "--tz", "Europe/Berlin", "--ignore-checks"],
                    tmp_path, env)
    assert "2099-03-26 08:00 CET" in scheduled.stdout and "07:00 UTC" in scheduled.stdout
    assert "2099-03-26 08:00" in run(["issue", "list"], tmp_path, env).stdout
    past = command(["issue", "schedule", "1", "--at", "2001-01-01 08:00"], tmp_path, env, check=False)
    assert past.returncode == 1 and "in the past" in past.stderr
    command(["issue", "unschedule", "1"], tmp_path, env)
    tested = command(["issue", "test", "1", "--to", "editor@example.com,second@example.com", "--to", "third@example.com"],
                 tmp_path, env).stdout
    for address in ("editor@example.com", "second@example.com", "third@example.com"):
        assert f"{address}: sent" in tested
    assert len(list((tmp_path / "outbox").glob("test-*.eml"))) == 3
    # Addresses as a mail client copies them: a quoted name with a comma, a name with an accent.
    named = command(["issue", "test", "1", "--to", '"Doe, Jane" <jane@example.org>, Seán O\'Brien <sean@bücher.de>'],
                    tmp_path, env).stdout
    assert "jane@example.org: sent" in named and "sean@bücher.de: sent" in named, named
    unquoted = command(["issue", "test", "1", "--to", "Doe, Jane <jd@example.com>"], tmp_path, env, check=False)
    assert unquoted.returncode == 1 and "--to: 'Doe':" in unquoted.stderr and "needs quotes" in unquoted.stderr
    injected = command(["issue", "test", "1", "--to", "a@example.org\nBcc: victim@example.org"], tmp_path, env,
                       check=False)
    assert injected.returncode == 1 and "control character" in injected.stderr
    test_mail = next((tmp_path / "outbox").glob("test-*.eml")).read_text()
    assert "Subject: [TEST] Video, images and data" in test_mail
    refused = command(["issue", "send", "1", "--ignore-checks"], tmp_path, env, check=False)  # 2 > confirm_over 1
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert "sending to 2 subscribers" in command(["issue", "send", "1", "--yes", "--wait", "--ignore-checks"],
                                             tmp_path, env).stdout
    late = command(["issue", "edit", "1", "--subject", "Too late"], tmp_path, env, check=False)
    assert late.returncode == 1 and "can no longer change" in late.stderr
    stats = command(["stats", "--html", "report.html"], tmp_path, env).stdout
    assert "2026-W47" in stats and (tmp_path / "report.html").read_text().count("<svg") == 6
    # On a terminal of 80 columns every header is whole, and a 0 under "deliv" says why (file outbox).
    narrow = command(["stats"], tmp_path, {**env, "COLUMNS": "80"}).stdout
    header = next(line for line in narrow.splitlines() if line.lstrip().startswith("issue"))
    assert header.split() == ["issue", "week", "rcpt", "sent", "deliv", "bounce", "compl", "unsub", "votes",
                              "bounce%", "compl%"] and len(header) <= 80, narrow
    assert "file outbox, so it stays 0" in narrow
    digest = command(["stats", "--votes", "--last", "3"], tmp_path, env).stdout
    assert "community" in digest and sum("-vs-" in line for line in digest.splitlines()) == 3, digest


@pytest.mark.parametrize("value", ["0", "65"])
def test_an_option_out_of_its_range_is_refused(tmp_path, value):
    """The CLI's own coercion (common._Plain, which spares --help pydantic) skipped typer's range check:
    `worker --processes 0` started, though --help says [1<=x<=64] (outside trial)."""
    write_config(tmp_path)
    result = command(["worker", "--processes", value, "--until-idle"], tmp_path, check=False)
    assert result.returncode == 2 and f"{value} is not in the range 1<=x<=64" in result.stdout + result.stderr


def test_serving_off_base_urls_port_says_where_links_point(tmp_path):
    """`serve --port 18431` with the default base_url served a signup form posting to :8000 and mails
    linking there, without a word (outside trial): now it says so and how to fix it."""
    from newsletter.config import load_settings
    from newsletter.web.app import link_warning

    settings = load_settings(write_config(tmp_path))  # base_url https://verdicts.example: not local
    assert link_warning(settings, 18431) is None
    local = settings.model_copy(update={"site": settings.site.model_copy(update={"base_url": "http://127.0.0.1:8000"})})
    assert link_warning(local, 8000) is None and link_warning(local, None) is None
    warning = link_warning(local, 18431)
    assert "port 8000, not 18431" in warning and "NEWSLETTER_SITE__BASE_URL=http://127.0.0.1:18431" in warning


def test_a_command_run_where_there_is_no_database_says_so_and_creates_nothing(tmp_path):
    """`subscribers export` in a folder without the store created var/newsletter.db (-shm, -wal) there
    and called it "not at the current schema" (outside trial)."""
    result = command(["subscribers", "export"], tmp_path, check=False)
    assert result.returncode == 1 and "no database at" in result.stderr and "config.toml" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_command_line_changes_are_in_the_audit_log(tmp_path):
    """The console's audit page says it holds the command line's changes too; `issue draft`,
    `schedule`, `test`, `send`, `subscribers import` and `forget` were missing from it (outside
    trial), the sends whose checks were overridden among them."""
    write_config(tmp_path)
    env = {"NEWSLETTER_SECRET_KEY": "k" * 40}
    command(["db", "upgrade"], tmp_path, env)
    sample = Path(__file__).resolve().parents[2] / "newsletter" / "content" / "sample"
    command(["content", "import", *map(str, sorted(sample.glob("*.toml")))], tmp_path, env)
    (tmp_path / "readers.csv").write_text("email,name\none@example.com,One\ngone@example.com,Gone\n")
    command(["subscribers", "import", str(tmp_path / "readers.csv")], tmp_path, env)
    command(["subscribers", "forget", "gone@example.com"], tmp_path, env)
    command(["issue", "draft", "--week", "2026-W47"], tmp_path, env)
    command(["issue", "schedule", "1", "--at", "2099-03-26 08:00", "--ignore-checks"], tmp_path, env)
    command(["issue", "test", "1", "--to", "editor@example.com"], tmp_path, env)
    command(["issue", "send", "1", "--ignore-checks", "--yes"], tmp_path, env)
    with sqlite3.connect(tmp_path / "newsletter.db") as db:
        entries = db.execute("SELECT actor, action, target, after FROM audit_log ORDER BY id").fetchall()
    assert [(actor, action) for actor, action, _target, _after in entries] == [
        ("cli", "readers.import"), ("cli", "reader.forget"), ("cli", "issue.draft"), ("cli", "issue.schedule"),
        ("cli", "issue.test"), ("cli", "issue.send")]
    after = {action: json.loads(value) for _actor, action, _target, value in entries}
    assert after["readers.import"]["new"] == 2 and after["issue.send"]["ignored_checks"] == ["week"]
    assert after["issue.schedule"]["ignored_checks"] == ["week"] and after["issue.send"]["recipients"] == 1
    assert "gone@example.com" not in repr(entries)  # a forgotten address is nowhere, the log included
