"""The file outbox for the demo and tests: each message becomes `<reference>.eml`.

Written to a temporary name that does not end in `.eml` (`.tmp-….part`) and
renamed, so a reader looking for `*.eml` never sees half a message (a
temporary `.eml` name was once caught mid-write by a test that globbed); the
name is the delivery reference, so a retried delivery replaces its file
instead of adding a second one. A failed write leaves no temporary file.

With `return_path` (`[mail] verp` or `bounce_address` set), each file starts with
`Return-Path: <envelope sender>`, as a delivering server writes it, so the envelope (e.g. the
VERP address) can be checked without an SMTP server.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class FileTransport:
    name = "file"
    needs_bytes = True

    def __init__(self, folder: Path, return_path: bool = False) -> None:
        self.folder = Path(folder)
        self.return_path = return_path
        self.folder.mkdir(parents=True, exist_ok=True)

    def path_for(self, reference: str) -> Path:
        return self.folder / f"{_SAFE.sub('_', reference)}.eml"

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in messages:
            target = self.path_for(message.reference)
            temp = None
            try:
                fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".part")
                with os.fdopen(fd, "wb") as handle:
                    if self.return_path:
                        handle.write(f"Return-Path: <{message.envelope_from}>\r\n".encode("ascii", "replace"))
                    handle.write(message.data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            except OSError as exc:
                if temp is not None:
                    Path(temp).unlink(missing_ok=True)
                results.append(SendResult(Outcome.retry, error=f"file outbox: {exc}"))
                continue
            results.append(SendResult(Outcome.sent, provider_id=target.name))
        return results

    def close(self) -> None:
        pass
