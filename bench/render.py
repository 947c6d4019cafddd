"""Per-recipient message assembly vs. a full render per recipient (the reference).

Both run in the same process on the same issue (the largest sample week), so
the ratio is meaningful on a shared, noisy machine; absolute rates are for
orientation only. Run: `python -m bench.render` (or `make bench`).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from newsletter.config import load_settings
from newsletter.content.importer import import_files, sample_files
from newsletter.db import make_engine, session_scope
from newsletter.issues.drafting import draft_issue
from newsletter.issues.message import Recipient, build_template, issue_message
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from newsletter.migrate import upgrade

SECRET = "bench-secret-" + "b" * 40


def _issue_view(folder: Path):
    config = folder / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{folder}/bench.db"\n[site]\ntimezone = "Europe/Berlin"\n')
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    upgrade(engine)
    import_files(engine, sample_files())
    issue = draft_issue(engine, settings, "2026-W48").issue
    with session_scope(engine) as session:
        return settings, build_issue_view(session, settings, issue)


def run(ours_n: int = 5000, reference_n: int = 30) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        settings, view = _issue_view(Path(tmp))
        now = datetime.now(UTC)

        started = time.perf_counter()
        template = build_template(settings, compile_issue(view))
        compile_seconds = time.perf_counter() - started

        started = time.perf_counter()
        size = 0
        for n in range(ours_n):
            message, _ = issue_message(settings, SECRET, template, Recipient(f"r{n}@example.com", "Reader", n, f"b-{n}"), now)
            size += len(message.data)
        ours = ours_n / (time.perf_counter() - started)

        started = time.perf_counter()
        for n in range(reference_n):  # what a naive sender does: compile per recipient
            per = build_template(settings, compile_issue(view))
            issue_message(settings, SECRET, per, Recipient(f"r{n}@example.com", "Reader", n, f"b-{n}"), now)
        reference = reference_n / (time.perf_counter() - started)
    return {
        "compile_ms": round(compile_seconds * 1000, 1),
        "ours_per_s": round(ours),
        "reference_per_s": round(reference, 1),
        "ratio": round(ours / reference, 1),
        "message_kb": round(size / ours_n / 1024, 1),
    }


def main() -> None:
    result = run()
    print(f"render: compile once {result['compile_ms']} ms; per-recipient assembly {result['ours_per_s']} msg/s; "
          f"full render per recipient {result['reference_per_s']} msg/s; ratio {result['ratio']}x; "
          f"message {result['message_kb']} KB")


if __name__ == "__main__":
    main()
