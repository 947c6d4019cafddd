"""Every file the CLI reads or writes for a person goes through here.

Writing: to a temporary file in the same folder, then `os.replace` onto the name, so a symlink
planted at the name (e.g. var/preview/issue-3.html -> ~/.ssh/authorized_keys) is replaced, never
followed, and a reader never sees half a file. Reading: at most `limit` bytes, so `/dev/zero`
or a runaway file is an error, not unbounded memory. Both raise UserError with one line that
names the path and the reason (the CLI prints it without a traceback).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from newsletter.errors import UserError

MiB = 1024 * 1024
DEFAULT_READ_LIMIT = 16 * MiB  # content files, subscriber lists, editor's notes: far below this


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_limited(path: Path, limit: int = DEFAULT_READ_LIMIT, label: str = "") -> bytes:
    """The bytes of `path`, or UserError when it cannot be read or is larger than `limit`."""
    name = f"{label} {path}".strip()
    try:
        with open(path, "rb") as handle:  # a folder: IsADirectoryError
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UserError(f"{name}: cannot read ({_reason(exc)})") from None
    if len(data) > limit:
        raise UserError(f"{name}: larger than {limit // MiB} MiB (or endless); refused")
    return data


def read_text_limited(path: Path, limit: int = DEFAULT_READ_LIMIT, label: str = "",
                      encoding: str = "utf-8") -> str:
    data = read_limited(path, limit, label)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UserError(f"{f'{label} {path}'.strip()}: not UTF-8 text (byte {exc.start})") from None


def ensure_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the folder ({_reason(exc)})") from None
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")


def write_atomic(path: Path, data: bytes | str | Iterable[str], encoding: str = "utf-8") -> Path:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename;
    text chunks (an export streamed) are written as they come."""
    payload = data.encode(encoding) if isinstance(data, str) else data
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(payload, bytes):
                handle.write(payload)
            else:
                for chunk in payload:
                    handle.write(chunk.encode(encoding))
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; these files are meant to be opened and shared
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({_reason(exc)})") from None
    except BaseException:  # the chunks' producer failed (a lost database): no half file left behind
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
