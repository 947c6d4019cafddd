"""`newsletter subscribers import` as an operator runs it (issue 14.10): a bad row names its line and
the reason and imports nothing, unless --skip-bad-rows; an export imports back as it was."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.cli.test_cli import run

ENV = {"NEWSLETTER_SECRET_KEY": "k" * 40}
SAMPLE = Path(__file__).resolve().parents[2] / "newsletter" / "content" / "sample"


@pytest.fixture
def folder(tmp_path):
    """A migrated store with the sample content (categories Developer Tools, Design & Media, ...)."""
    write_config(tmp_path)
    run(["db", "upgrade"], tmp_path, ENV)
    run(["content", "import", *map(str, sorted(SAMPLE.glob("*.toml")))], tmp_path, ENV)
    return tmp_path


def import_file(folder: Path, text: str, *flags: str):
    (folder / "readers.csv").write_text(text, encoding="utf-8")
    return run(["subscribers", "import", "readers.csv", *flags], folder, ENV, check=False)


def exported(folder: Path) -> dict[str, dict]:
    rows = csv.DictReader(io.StringIO(run(["subscribers", "export"], folder, ENV).stdout))
    return {row["email"]: row for row in rows}


BAD = (
    "email,name,topics,status,confirmed_at\n"
    "good@example.com,Good,developer tools;Design & Media,,2026-10-01\n"   # 2: fine (topic case is forgiven)
    "typo@example.com,Typo,Developer Tols,,\n"                            # 3: not a category
    "not-an-address,Bad,,,\n"                                             # 4: bad address
    "pending@example.com,,,pending,\n"                                    # 5: never confirmed
    "odd@example.com,,,paused,\n"                                         # 6: unknown status
    "late@example.com,,,,next tuesday\n"                                  # 7: not a date
    "future@example.com,,,,2999-01-01\n"                                  # 8: in the future
    "Good@Example.com,Again,,,\n"                                         # 9: the same reader twice
    "fine@example.com,Fine,Writing & Research|Data & Analytics,,\n"       # 10: fine, | separates too
)


def test_a_bad_file_names_every_bad_line_and_imports_nothing(folder):
    result = import_file(folder, BAD)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    err = " ".join(result.stderr.split())
    assert "nothing imported (7 bad rows" in err
    for expected in ("line 3: topics: 'Developer Tols' is not a category of this publication",
                     "line 4: email:", "line 5: status: 'pending': never confirmed",
                     "line 6: status: 'paused': use one of active, unsubscribed, bounced, complained",
                     "line 7: confirmed_at: 'next tuesday' is not a date", "line 8: confirmed_at: 2999-01-01 is in the future",
                     "line 9: email: good@example.com is already on line 2"):
        assert expected in err, err
    assert exported(folder) == {}


def test_skip_bad_rows_imports_the_good_ones_and_reports_each_skipped_line(folder):
    result = import_file(folder, BAD, "--skip-bad-rows")
    assert result.returncode == 0, result.stderr
    assert "2 new, 0 updated, 0 unchanged, 0 skipped, 7 bad rows left out" in result.stdout
    for line in range(3, 10):
        assert f"bad row, not imported: line {line}:" in result.stdout
    rows = exported(folder)
    assert set(rows) == {"good@example.com", "fine@example.com"}
    assert rows["good@example.com"]["topics"] == "Design & Media;Developer Tools"
    assert rows["good@example.com"]["confirmed_at"].startswith("2026-10-01")
    assert rows["fine@example.com"]["topics"] == "Data & Analytics;Writing & Research"


def test_a_header_with_an_unknown_column_is_refused(folder):
    result = import_file(folder, "email,topic\na@example.com,Developer Tools\n")
    assert result.returncode == 1 and "unknown column 'topic'" in result.stderr
    assert import_file(folder, "address\na@example.com\n").returncode == 1


def test_an_export_imports_back_as_it_was_and_never_resubscribes_a_leaver(folder, tmp_path):
    rows = ("email,name,status,topics,created_at,confirmed_at,unsubscribed_at\n"
            "stays@example.com,Stays,active,Developer Tools,2026-01-05T10:00:00+00:00,2026-01-05T10:05:00+00:00,\n"
            "left@example.com,Left,unsubscribed,,2026-02-01T08:00:00+00:00,2026-02-01T08:01:00+00:00,"
            "2026-06-30T12:00:00+00:00\n"
            "bounced@example.com,,bounced,,2026-03-01T08:00:00+00:00,,\n")
    first = import_file(folder, rows)
    assert first.returncode == 0, first.stderr
    before = exported(folder)
    assert before["stays@example.com"]["created_at"].startswith("2026-01-05T10:00")
    assert before["left@example.com"]["status"] == "unsubscribed"
    assert before["left@example.com"]["unsubscribed_at"].startswith("2026-06-30T12:00")
    assert "bounced@example.com" not in before  # a suppression, not a reader
    (tmp_path / "export.csv").write_text(run(["subscribers", "export"], folder, ENV).stdout)
    again = run(["subscribers", "import", str(tmp_path / "export.csv")], folder, ENV)
    assert "left@example.com: unsubscribed here" in again.stdout
    assert exported(folder) == before
    # An old list that still has the leaver as active does not bring them back either.
    old_list = import_file(folder, "email,name\nleft@example.com,Left\nbounced@example.com,\n")
    assert "left@example.com: unsubscribed here; an import never re-subscribes anyone" in old_list.stdout
    assert "bounced@example.com: suppressed" in old_list.stdout
    assert exported(folder)["left@example.com"]["status"] == "unsubscribed"
