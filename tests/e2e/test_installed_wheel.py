"""The program as someone gets it from a wheel: a plain `pip install` into a fresh virtual
environment, run from an empty folder, nowhere near this repository.

An editable install reads templates/ and config.toml from the checkout, so only a real wheel
shows whether they ship. Building and installing takes about half a minute (pip takes the
dependencies from its cache or the configured indexes), so all tests here share one install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from newsletter import PROJECT_ROOT

SHIPPED_TEMPLATES = sorted(p.relative_to(PROJECT_ROOT).as_posix()
                           for p in (PROJECT_ROOT / "templates").rglob("*") if p.is_file())


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "PYTHON"))}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _source_copy(target: Path) -> Path:
    """The project's files (tracked or new, not ignored): a build leaves build/ and *.egg-info behind."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True)
    if listing.returncode != 0:  # not a git checkout (an unpacked sdist): take the folder as it is
        shutil.copytree(PROJECT_ROOT, target, ignore=shutil.ignore_patterns(
            ".venv", ".git", "var", "build", "dist", "*.egg-info", "__pycache__", "node_modules"))
        return target
    for name in listing.stdout.splitlines():
        if (PROJECT_ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = _source_copy(work / "source")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"), str(source)], work)
    (built,) = (work / "dist").glob("weekly_verdicts-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed by a plain `pip install`; its bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    # Without ensurepip's bootstrap (~20 s of CPU): this process's pip installs into the new
    # environment (`pip --python`), the same plain `pip install` of the wheel and its dependencies.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv)
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
          "--no-compile", str(wheel)], venv)
    return venv / "bin"


def test_the_wheel_carries_every_template_and_the_default_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "newsletter/_data/config.toml" in names
    assert SHIPPED_TEMPLATES and {f"newsletter/_data/{name}" for name in SHIPPED_TEMPLATES} <= names
    assert any(name.startswith("newsletter/migrations/versions/0001_") for name in names)
    assert any(name.startswith("newsletter/content/sample/") for name in names)


def test_demo_runs_from_an_empty_folder_without_a_config(installed, tmp_path):
    where = _run([str(installed / "python"), "-c", "import newsletter; print(newsletter.__file__)"], tmp_path)
    package = Path(where.stdout.strip()).parent
    assert package.is_relative_to(installed.parent), where.stdout  # the installed copy, not this checkout
    result = _run([str(installed / "newsletter"), "demo"], tmp_path)
    files = sorted((tmp_path / "var" / "outbox").glob("*.eml"))
    assert f"Sent {len(files)} messages" in result.stdout and len(files) == 6, result.stdout
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    assert "Read the full verdict" in html and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (tmp_path / "var" / "newsletter.db").is_file()  # the embedded defaults write to the working folder
    assert not (package / "_data" / "var").exists()  # ... never into the installed package


def test_an_operator_template_overrides_one_partial_of_the_installed_package(installed, tmp_path):
    mine = tmp_path / "my-templates" / "email" / "partials" / "footer.mjml.j2"
    mine.parent.mkdir(parents=True)
    mine.write_text('<mj-section><mj-column><mj-text>OPERATOR-FOOTER {{ site.postal_address }}</mj-text>'
                    '</mj-column></mj-section>\n')
    (tmp_path / "config.toml").write_text('[site]\ntemplates_dir = "my-templates"\n'
                                          'postal_address = "Sample Press, 1 Example Road, Berlin"\n')
    _run([str(installed / "newsletter"), "demo"], tmp_path)
    files = sorted((tmp_path / "var" / "outbox").glob("*.eml"))
    assert len(files) == 6
    for path in files:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        html = message.get_body(("html",)).get_content()
        assert "OPERATOR-FOOTER" in html  # the operator's partial ...
        assert "Read the full verdict" in html  # ... inside the shipped issue template
