"""A throwaway PostgreSQL cluster for tests that must stop or restart a server.

Tests never touch the machine's own server (other work uses it): a test that needs a restart runs
its own cluster, made by `initdb` into a temporary folder, listening on a free port on 127.0.0.1
with its socket in that folder, and removed afterwards. PostgreSQL refuses to run as root, so when
the tests run as root the cluster belongs to the `postgres` user (run through `runuser`) and the
folder is handed to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unavailable() -> str | None:
    """Why no throwaway cluster can be made here (None: it can)."""
    if _bin_dir() is None:
        return "no /usr/lib/postgresql/*/bin/initdb (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the cluster as"
        if not shutil.which("runuser"):
            return "running as root without `runuser`"
    return None


class ThrowawayCluster:
    """initdb, start, restart and remove one private cluster (trust auth, user postgres)."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="wv-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout, cwd=self.folder)

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options, "-w",
                  "-t", "60", *args)

    def start(self) -> ThrowawayCluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._pg_ctl("start")
        self.wait_accepting()
        return self

    def restart(self) -> None:
        """Fast shutdown (every connection is cut, as in a real restart), then start again."""
        self._pg_ctl("-m", "fast", "restart")

    def wait_accepting(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            engine = create_engine(self.url, connect_args={"connect_timeout": 2})
            try:
                with engine.connect() as connection:
                    connection.execute(text("select 1"))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            finally:
                engine.dispose()

    def remove(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
