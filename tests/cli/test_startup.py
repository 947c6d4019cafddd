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
