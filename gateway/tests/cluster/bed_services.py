"""The services a simulated cluster needs, each a real server inside a bed host.

:class:`DnsServer` is dnsmasq answering A records from a hosts file the test rewrites
(what a Kubernetes headless Service's name resolves to as pods come and go);
:func:`start_redis` is redis-server with its append-only file on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cluster.netbed import Host, NetBed, bed_unavailable_reason

__all__ = [
    "DnsServer",
    "cluster_unavailable_reason",
    "missing_programs",
    "resolve_inside",
    "start_redis",
    "wait_for_port",
]

REDIS_PORT = 6379


def missing_programs(names: Sequence[str] = ("redis-server", "dnsmasq")) -> list[str]:
    """The programs in ``names`` that are not installed."""
    return [name for name in names if shutil.which(name) is None]


def cluster_unavailable_reason() -> str | None:
    """Why a bed with its services cannot run here, or None when it can."""
    reason = bed_unavailable_reason()
    missing = missing_programs()
    if reason is None and missing:
        reason = f"{', '.join(missing)} not installed (apt-get install redis-server dnsmasq-base)"
    return reason


def wait_for_port(address: str, port: int, timeout: float = 15.0) -> None:
    """Return once a TCP connection to ``address:port`` succeeds; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answers on {address}:{port}: {error}") from error
            time.sleep(0.05)


def start_redis(bed: NetBed, host: Host, folder: Path) -> str:
    """redis-server on ``host`` (AOF on, fsync every write); its ``redis://`` URL."""
    folder.mkdir(parents=True, exist_ok=True)
    bed.spawn(
        host,
        [
            "redis-server",
            "--bind",
            host.address,
            "--port",
            str(REDIS_PORT),
            "--protected-mode",
            "no",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
    )
    wait_for_port(host.address, REDIS_PORT)
    return f"redis://{host.address}:{REDIS_PORT}/0"


class DnsServer:
    """dnsmasq on a bed host, authoritative for the names in its hosts file."""

    def __init__(self, bed: NetBed, host: Host, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.hosts_file = folder / "dns-hosts"
        self.hosts_file.write_text("")
        self.process = bed.spawn(
            host,
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                f"--addn-hosts={self.hosts_file}",
                f"--listen-address={host.address}",
                "--bind-interfaces",
                "--port=53",
                "--local-ttl=0",
                "--user=root",
                "--pid-file=",
            ],
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"dnsmasq exited with status {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("dnsmasq does not answer")
            time.sleep(0.05)

    def _answers(self) -> bool:
        query = (
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05probe\x04test\x00\x00\x01\x00\x01"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.2)
            try:
                client.sendto(query, (self.host.address, 53))
                client.recvfrom(512)
            except OSError:
                return False
        return True

    @property
    def address(self) -> str:
        """Where the server listens (port 53)."""
        return self.host.address

    def set_records(self, records: Mapping[str, Sequence[str]]) -> None:
        """Make each name resolve to exactly its addresses, and reload."""
        lines = [
            f"{address} {name}" for name, addresses in records.items() for address in addresses
        ]
        temporary = self.hosts_file.with_suffix(".tmp")
        temporary.write_text("".join(f"{line}\n" for line in lines))
        os.replace(temporary, self.hosts_file)
        os.kill(self.process.pid, signal.SIGHUP)


def resolve_inside(bed: NetBed, host: Host, name: str) -> list[str]:
    """The IPv4 addresses ``name`` resolves to from inside ``host`` (its own resolver)."""
    script = (
        "import socket,sys\n"
        "try:\n"
        f"    infos = socket.getaddrinfo({name!r}, None, socket.AF_INET, socket.SOCK_STREAM)\n"
        "except socket.gaierror:\n"
        "    sys.exit(0)\n"
        "print(' '.join(sorted({info[4][0] for info in infos})))\n"
    )
    result = bed.run(host, [sys.executable, "-c", script])
    if result.returncode != 0:
        raise RuntimeError(f"resolving {name} inside {host.name} failed: {result.stderr}")
    return result.stdout.split()
