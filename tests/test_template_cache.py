"""Compiled templates are kept on disk between processes (templating._BytecodeCache): a second
process renders from the cache, an edited template or other compile rules get a fresh compile, and
a damaged, unusable or turned-off cache never stops a render. Each test has a temp folder of its
own (TMPDIR), so the cache it looks at is only its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jinja2.bccache
import pytest

from newsletter.templating import environment, use_operator_templates

RENDER = """
import sys
from pathlib import Path
from newsletter import templating
if len(sys.argv) > 2:
    templating._fingerprint = lambda: sys.argv[2]  # as if Jinja or templating.py had changed
env = templating._environment((Path(sys.argv[1]),))
print(env.get_template('t.txt.j2').render(name='Ada'))
print('cached' if env.bytecode_cache is not None else 'uncached')
"""


@pytest.fixture
def temp(tmp_path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def _render(folder: Path, temp: Path, *extra: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", RENDER, str(folder), *extra], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(temp)}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _files(temp: Path) -> list[Path]:
    return sorted((temp / f"_jinja2-cache-{os.getuid()}").glob("__wv_*.cache"))


def test_a_second_process_renders_from_the_cache_and_an_edit_is_compiled_again(tmp_path, temp):
    (tmp_path / "t.txt.j2").write_text("Hello {{ name }}\n")
    assert _render(tmp_path, temp) == ["Hello", "Ada", "cached"]
    [file] = _files(temp)
    written = file.stat().st_mtime_ns
    assert _render(tmp_path, temp) == ["Hello", "Ada", "cached"]
    assert file.stat().st_mtime_ns == written  # read, not written again
    (tmp_path / "t.txt.j2").write_text("Goodbye {{ name }}\n")
    assert _render(tmp_path, temp) == ["Goodbye", "Ada", "cached"]  # the source's checksum changed
    assert _files(temp) == [file] and file.stat().st_mtime_ns != written


def test_other_compile_rules_never_read_what_the_old_ones_compiled(tmp_path, temp):
    (tmp_path / "t.txt.j2").write_text("Hello {{ name }}\n")
    assert _render(tmp_path, temp) == ["Hello", "Ada", "cached"]
    assert _render(tmp_path, temp, "after-an-upgrade") == ["Hello", "Ada", "cached"]
    assert len(_files(temp)) == 2  # one file per fingerprint


@pytest.mark.parametrize("damage", [
    b"not a cache file at all",
    jinja2.bccache.bc_magic + b"\x80\x04\x95",  # Jinja's header, then a cut-off checksum
    jinja2.bccache.bc_magic,
])
def test_a_damaged_file_is_compiled_over(tmp_path, temp, damage):
    (tmp_path / "t.txt.j2").write_text("Hello {{ name }}\n")
    assert _render(tmp_path, temp) == ["Hello", "Ada", "cached"]
    [file] = _files(temp)
    file.write_bytes(damage)
    assert _render(tmp_path, temp) == ["Hello", "Ada", "cached"]
    assert _render(tmp_path, temp) == ["Hello", "Ada", "cached"]
    assert file.read_bytes().startswith(jinja2.bccache.bc_magic) and file.read_bytes() != damage


def test_without_a_safe_cache_folder_templates_render_uncached(tmp_path, temp):
    """Where the per-user cache folder's name is taken by something that is not our 0700 folder
    (here a file; elsewhere another user's folder), Jinja refuses it, and rendering goes on."""
    (tmp_path / "t.txt.j2").write_text("Hello {{ name }}\n")
    (temp / f"_jinja2-cache-{os.getuid()}").write_text("not a folder")
    assert _render(tmp_path, temp) == ["Hello", "Ada", "uncached"]


def test_the_site_setting_turns_it_off(tmp_path, monkeypatch):
    from newsletter.config import load_settings
    from tests.conftest import write_config

    config = write_config(tmp_path)
    try:
        monkeypatch.setenv("NEWSLETTER_SITE__TEMPLATE_CACHE", "false")
        assert load_settings(config).site.template_cache is False
        assert environment().bytecode_cache is None
        monkeypatch.delenv("NEWSLETTER_SITE__TEMPLATE_CACHE")
        load_settings(config)
        assert environment().bytecode_cache is not None
    finally:
        use_operator_templates(None)
