"""`newsletter --help` and every group's and command's --help load nothing heavy (issue 18: commands
that do not touch the database start in under 0.3 s).

Not a timing test: one fresh interpreter runs every --help in turn through the console script's
entry point and reports which heavy modules each one added to sys.modules. A module-level import
of SQLAlchemy, FastAPI, Jinja2 and the like in any command module, or a typer change that brings
pydantic back (newsletter/cli/common.py, QuickGroup), shows here by name. The start-up time
itself is measured by `python -m bench cli_start` (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ["sqlalchemy", "sqlmodel", "alembic", "fastapi", "starlette", "uvicorn", "jinja2", "mjml", "psycopg",
         "requests", "httpx", "playwright", "pydantic", "argon2", "itsdangerous", "email_validator", "dkim",
         "newsletter.config", "newsletter.db", "newsletter.models"]

PROBE = """
import json, sys
heavy = json.loads(sys.argv[1])
from typer.main import get_command
from newsletter.cli import app, main

def helps(command, path):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from helps(sub, [*path, name])

found = {}
for path in list(helps(get_command(app), [])):
    sys.argv = ["newsletter", *path, "--help"]
    try:
        main()
    except SystemExit:
        pass
    loaded = [name for name in heavy if name in sys.modules]
    if loaded:
        found[" ".join(path) or "(root)"] = loaded
        break  # later commands would inherit these
    found.setdefault("checked", []).append(" ".join(path))
sys.stdout = sys.__stdout__
print("RESULT " + json.dumps(found))
"""


def test_no_help_imports_a_heavy_module():
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    line = [text for text in result.stdout.splitlines() if text.startswith("RESULT ")][-1]
    found = json.loads(line.removeprefix("RESULT "))
    checked = found.pop("checked", [])
    assert not found, f"--help imported heavy modules: {found} (after {len(checked)} clean ones)"
    # Every group and at least the commands we know of were walked (the walk itself can fail to find them).
    for path in ["", "issue", "issue send", "db", "subscribers", "subscribers import", "editors", "tokens",
                 "bounces", "content", "stats", "worker", "serve"]:
        assert path in checked, (path, checked)


# What a command that reads the database through plain SQL must not load: the ORM's models and
# SQLModel (newsletter/engine.py, reports/stats.py), Alembic (the schema check reads the
# migration files' lines), typer's pydantic adapters (QuickGroup coerces a command's plain
# parameters itself). `newsletter stats` spent ~0.5 s of CPU on them before its 0.04 s of queries.
DB_COMMAND_HEAVY = ["sqlmodel", "sqlalchemy.orm", "newsletter.db", "newsletter.models", "alembic",
                    "typer._adapters", "jinja2", "fastapi", "email_validator"]

DB_PROBE = """
import json, sys
sys.argv = ["newsletter", "--config", sys.argv[1], *json.loads(sys.argv[2])]
from newsletter.cli import main
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
sys.stdout = sys.__stdout__
print("RESULT " + json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in
                                    {"sqlmodel", "sqlalchemy", "newsletter", "alembic", "typer", "jinja2",
                                     "fastapi", "email_validator"})))
"""


def test_stats_reads_the_database_without_the_orm(engine, tmp_path):
    """`newsletter stats` (and `stats --last 3`, whose option is coerced from text) against
    a migrated database: the report runs and the ORM, Alembic and typer's adapters stay unloaded."""
    config = str(tmp_path / "config.toml")
    for args in (["stats"], ["stats", "--last", "3"]):
        result = subprocess.run([sys.executable, "-c", DB_PROBE, config, json.dumps(args)], capture_output=True,
                                text=True, env={**os.environ, "COLUMNS": "100"}, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "Issues, oldest first" in result.stdout, result.stdout
        loaded = json.loads([line for line in result.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])
        assert "newsletter.reports.stats" in loaded  # the probe saw the command run
        assert not [name for name in DB_COMMAND_HEAVY if name in loaded], loaded


LATER = ["email_validator", "markdown_it"]
SEND_PATH = """
import json, sys
import newsletter.cli.issue, newsletter.workflow.sending, newsletter.delivery.pool
before = [name for name in json.loads(sys.argv[1]) if name in sys.modules]
from newsletter.issues.render import warm_up
warm_up()
print("RESULT " + json.dumps({"before": before, "warm": "markdown_it" in sys.modules}))
"""


def test_the_send_path_imports_the_validator_and_markdown_when_it_needs_them():
    """`issue send` and a worker's start load email-validator and markdown-it only to validate an
    address or render a note (issue 18 point 2: their import was on the way to the first message);
    a worker's warm-up, which runs before it forks its processes, makes the note parser."""
    result = subprocess.run([sys.executable, "-c", SEND_PATH, json.dumps(LATER)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads([text for text in result.stdout.splitlines() if text.startswith("RESULT ")][-1][7:])
    assert found == {"before": [], "warm": True}
