"""`newsletter ARGS` run inside the test process, answering as `subprocess.run` would.

A `python -m newsletter` process costs 1-2 s of start-up (Python, SQLAlchemy, pydantic, FastAPI,
the templates) before the command does anything; a test about what a command does, says and
writes needs the command, not the process boundary. This runs the console script's own entry
point (`newsletter.cli.main`, which turns a UserError into one red line and exit status 1) with
the process-wide things a real process would have of its own: argv, the environment, the working
folder, stdin/stdout/stderr as byte streams, logging as `basicConfig` leaves it, and no engine
or operator-template folder left behind when it ends. An exception that escapes `main` becomes a
traceback on stderr and exit status 1, as in a process, so "Traceback" assertions keep their teeth.

The entry point itself (the console script, `python -m newsletter`, exit codes seen by a shell)
stays tested through real processes: tests/cli/test_cli.py, tests/test_hostile_files.py's config
test, tests/web/test_serve.py, tests/test_scheduler_process.py, tests/delivery/test_workers.py.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

_one_at_a_time = threading.Lock()  # argv, environ, cwd and the std streams are process-wide


def run_cli(args: list[str], cwd: Path, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    """Run `newsletter *args` in `cwd` with exactly `env` as its environment; never raises."""
    from newsletter.cli import main

    with _one_at_a_time:
        saved = (sys.argv, sys.stdin, sys.stdout, sys.stderr, os.getcwd(), dict(os.environ))
        root = logging.getLogger()
        saved_logging = (root.handlers[:], root.level)
        out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
        sys.stdout, sys.stderr, sys.argv = out, err, ["newsletter", *args]
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        root.handlers = []  # so the command's logging.basicConfig writes to this stderr, as in a process
        widths = _console_widths(env)
        try:
            code = _exit_status(main)
        finally:
            _console_widths(widths)
            out.flush()
            err.flush()
            sys.argv, sys.stdin, sys.stdout, sys.stderr = saved[:4]
            os.chdir(saved[4])
            os.environ.clear()
            os.environ.update(saved[5])
            root.handlers, _ = saved_logging
            root.setLevel(saved_logging[1])
            _end_of_process()
    return subprocess.CompletedProcess(["newsletter", *args], code, _text(out), _text(err))


def _console_widths(env: dict[str, str]) -> dict[str, str]:
    """Give the CLI's rich consoles the width a new process would read from `env`'s COLUMNS (they
    read it once, when made at import: in this process, under another environment); returns the
    widths they had, in the same form, to put back."""
    from newsletter.cli.common import console, err

    before = {"COLUMNS": str(console.width)}
    width = int(env.get("COLUMNS", "80") or 80)
    console.width = err.width = width
    return before


def _exit_status(main) -> int:
    try:
        main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # sys.exit("message"): printed, status 1
        return 1
    except BaseException:  # what an uncaught exception does to a process
        traceback.print_exc()
        return 1
    return 0


def _text(stream: io.TextIOWrapper) -> str:
    return stream.buffer.getvalue().decode("utf-8", errors="replace")


def _end_of_process() -> None:
    """What ends with a process: its database connections and its operator-template folder."""
    from newsletter.config import use_operator_templates
    from newsletter.db import dispose_engines

    dispose_engines()
    use_operator_templates(None)
