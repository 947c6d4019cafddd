"""Compiled templates are kept on disk between processes (templating._BytecodeCache): a second
process renders from the cache, an edited template is compiled again, and a broken or unwritable
cache never stops a render."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jinja2

from newsletter.templating import _bytecode_cache

RENDER = ("import sys; from pathlib import Path; from newsletter.templating import _environment; "
          "env = _environment((Path(sys.argv[1]),)); print(env.get_template('t.txt.j2').render(name='Ada')); "
          "print('compiled' if env.bytecode_cache is not None else 'no cache')")


def _render(folder: Path, env: dict | None = None) -> list[str]:
    done = subprocess.run([sys.executable, "-c", RENDER, str(folder)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _cache_files(cache: jinja2.FileSystemBytecodeCache, folder: Path) -> list[Path]:
    """The cache's file of folder/t.txt.j2 (Jinja keys it by template name and file name)."""
    bucket = jinja2.bccache.Bucket(jinja2.Environment(), cache.get_cache_key("t.txt.j2", str(folder / "t.txt.j2")),
                                   "")
    return [Path(cache._get_cache_filename(bucket))]


def test_a_second_process_renders_from_the_cache_and_an_edit_is_compiled_again(tmp_path):
    cache = _bytecode_cache()
    assert cache is not None, "no safe temp folder for the template cache on this machine"
    (tmp_path / "t.txt.j2").write_text("Hello {{ name }}\n")
    [file] = _cache_files(cache, tmp_path)
    assert not file.exists()
    assert _render(tmp_path) == ["Hello", "Ada", "compiled"]
    assert file.exists()
    written = file.stat().st_mtime_ns
    assert _render(tmp_path) == ["Hello", "Ada", "compiled"]
    assert file.stat().st_mtime_ns == written  # read, not written again
    (tmp_path / "t.txt.j2").write_text("Goodbye {{ name }}\n")
    assert _render(tmp_path) == ["Goodbye", "Ada", "compiled"]  # the source's checksum changed
    assert file.stat().st_mtime_ns != written
    file.write_bytes(b"not a cache file at all")
    assert _render(tmp_path) == ["Goodbye", "Ada", "compiled"]  # unreadable: compiled from source
    file.unlink()


def test_without_a_safe_cache_folder_templates_render_uncached(tmp_path):
    """Where the per-user cache folder's name is taken by something that is not our 0700 folder
    (here a file; elsewhere another user's folder), Jinja refuses it, and rendering goes on."""
    import os

    (tmp_path / "t.txt.j2").write_text("Hello {{ name }}\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / f"_jinja2-cache-{os.getuid()}").write_text("not a folder")
    env = {**os.environ, "TMPDIR": str(temp)}
    assert _render(tmp_path, env) == ["Hello", "Ada", "no", "cache"]
