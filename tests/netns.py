"""Worker "hosts" in Linux network namespaces, for tests of a cut network (issue 18.5).

Each host is a namespace joined to the root namespace by a veth pair (10.X.N.2 inside, 10.X.N.1
outside). Services on the root namespace's loopback (the tests' PostgreSQL, an aiosmtpd sink) are
not reachable from a namespace, so a small TCP forwarder listens on each host's outside address
and passes connections on to them: a host reaches the database and the sink only over its own
link, and `cut(host)` (ip link set … down) stops all of it at once, as a pulled cable would.
Everything is removed again on leaving the `hosts` context, also when a test fails. Needs root.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def netns_problem() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and iproute2 (ip netns)"
    name = f"wvprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    number: int
    namespace: str
    outside: str  # the root end of the veth pair: the host's way to the database and the sink
    inside: str  # the host's own address
    link: str  # the root end's interface name: `cut` takes it down

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


@dataclass
class Forwarder:
    """TCP from (address, port) to 127.0.0.1:target, a thread per direction of each connection."""

    address: str
    target: int
    listener: socket.socket = field(init=False)
    sockets: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server((self.address, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        """Shut every connection down (a bare close leaves a socket open while a thread is blocked in
        recv on it: a host's database session, its peer gone with the namespace, would stay open and
        hold its locks against the test's DROP SCHEMA)."""
        for sock in [self.listener, *self.sockets]:
            for step in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
                try:
                    step()
                except OSError:
                    pass


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """`count` namespaces with their veth links; all removed on exit, whatever happened."""
    tag, net = secrets.token_hex(2), 100 + secrets.randbelow(150)
    made: list[Host] = []
    try:
        for n in range(1, count + 1):
            host = Host(n, f"wvns{n}{tag}", f"10.{net}.{n}.1", f"10.{net}.{n}.2", f"wvr{n}{tag}")
            inner = f"wvn{n}{tag}"
            _ip("netns", "add", host.namespace)
            made.append(host)
            _ip("link", "add", host.link, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", host.namespace)
            _ip("addr", "add", f"{host.outside}/24", "dev", host.link)
            _ip("link", "set", host.link, "up")
            for args in (("addr", "add", f"{host.inside}/24", "dev", inner), ("link", "set", inner, "up"),
                         ("link", "set", "lo", "up")):
                _ip("netns", "exec", host.namespace, "ip", *args)
        yield made
    finally:
        for host in made:
            subprocess.run(["ip", "link", "del", host.link], capture_output=True)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)


def cut(host: Host) -> None:
    _ip("link", "set", host.link, "down")


def mend(host: Host) -> None:
    _ip("link", "set", host.link, "up")
