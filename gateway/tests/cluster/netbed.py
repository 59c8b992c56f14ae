"""A cluster of hosts on one machine: Linux network namespaces on one bridge.

Each host is a network namespace with one veth interface whose other end is a port
of a bridge in a namespace of its own (the switch), so that every host reaches every
other on a private /24 that the bed creates, and nothing else. The test process
joins the same segment through one more veth pair, so it can call the hosts
directly. Cutting a host's link sets its switch port down: packets to and from the
host vanish with no reset, as when a machine loses its network.

Processes run inside a host with ``ip netns exec``, which also mounts
``/etc/netns/NAMESPACE/resolv.conf`` over ``/etc/resolv.conf``: that is how a host is
pointed at the bed's DNS server. Everything the bed makes (namespaces, links, those
files, the processes) is removed by :meth:`NetBed.close`, also after a failure.

Needs root and iproute2 (Linux only); :func:`bed_unavailable_reason` says why a bed
cannot be built here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

__all__ = ["Host", "NetBed", "bed_unavailable_reason"]

NETNS_ETC = Path("/etc/netns")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def bed_unavailable_reason() -> str | None:
    """Why no bed can be built on this machine, or None when one can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed (apt-get install iproute2)"
    probe = f"kbprobe{os.getpid() % 100000}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 that no route of this machine overlaps."""
    routes = _ip("-4", "route", "show", "table", "all").stdout
    taken = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable"):
            word = line.split()[1]
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    candidates = list(range(1, 255))
    random.Random(os.getpid()).shuffle(candidates)
    for third in candidates:
        subnet = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if not any(subnet.overlaps(other) for other in taken if other.prefixlen > 0):
            return subnet
    raise RuntimeError("no free /24 in 10.213.0.0/16 for the test bed")


@dataclass
class Host:
    """One simulated machine: a network namespace with one address on the bed."""

    name: str
    namespace: str
    address: str
    switch_port: str
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *args]


class NetBed:
    """Hosts on a private segment, made on entry and removed on exit."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"kb{os.getpid() % 100000}"
        self.subnet = _free_subnet()
        self._addresses = iter(self.subnet.hosts())
        self.switch = f"{self.tag}-sw"
        self.hosts: dict[str, Host] = {}
        self._root_link = f"{self.tag}-r"
        self._made_switch = False
        self.client_address = ""

    def __enter__(self) -> Self:
        try:
            self._make_switch()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _make_switch(self) -> None:
        _ip("netns", "add", self.switch)
        self._made_switch = True
        _ip("-n", self.switch, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        # the test process's own leg onto the segment
        self.client_address = str(next(self._addresses))
        port = f"{self.tag}-rp"
        _ip("link", "add", self._root_link, "type", "veth", "peer", "name", port)
        _ip("link", "set", port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("addr", "add", f"{self.client_address}/{self.subnet.prefixlen}", "dev", self._root_link)
        _ip("link", "set", self._root_link, "up")

    def add_host(self, name: str, nameserver: str | None = None) -> Host:
        """A new host named ``name`` on the segment; DNS from ``nameserver`` when given."""
        index = len(self.hosts)
        namespace = f"{self.tag}-{name}"
        port = f"{self.tag}-p{index}"
        host = Host(name, namespace, str(next(self._addresses)), port)
        _ip("netns", "add", namespace)
        self.hosts[name] = host
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "link", "add", "eth0", "type", "veth", "peer", "name", port)
        _ip("-n", namespace, "link", "set", port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip(
            "-n", namespace, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0"
        )
        _ip("-n", namespace, "link", "set", "eth0", "up")
        if nameserver is not None:
            self.set_nameserver(host, nameserver)
        return host

    def set_nameserver(self, host: Host, nameserver: str) -> None:
        """Point ``host``'s resolver (``/etc/resolv.conf`` inside it) at ``nameserver``."""
        folder = NETNS_ETC / host.namespace
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text(
            f"nameserver {nameserver}\noptions timeout:1 attempts:2\n"
        )

    def cut(self, host: Host) -> None:
        """Take ``host`` off the network: its switch port goes down, nothing is closed."""
        _ip("-n", self.switch, "link", "set", host.switch_port, "down")

    def restore(self, host: Host) -> None:
        """Put ``host`` back on the network."""
        _ip("-n", self.switch, "link", "set", host.switch_port, "up")

    def spawn(
        self,
        host: Host,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[bytes] | None = subprocess.DEVNULL,
        stderr: int | IO[bytes] | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` inside ``host``, in a process group of its own."""
        process = subprocess.Popen(
            host.command(args),
            env={**os.environ, **(env or {})},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        host.processes.append(process)
        return process

    def run(
        self, host: Host, args: Sequence[str], timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside ``host`` to completion; its result."""
        return subprocess.run(
            host.command(args), capture_output=True, text=True, timeout=timeout, check=False
        )

    def close(self) -> None:
        """Stop every process, then remove the hosts, the switch and the test's own leg."""
        for host in self.hosts.values():
            for process in host.processes:
                _stop(process)
        for host in self.hosts.values():
            _ip("netns", "del", host.namespace, check=False)
            shutil.rmtree(NETNS_ETC / host.namespace, ignore_errors=True)
        self.hosts.clear()
        _ip("link", "del", self._root_link, check=False)
        if self._made_switch:
            _ip("netns", "del", self.switch, check=False)
            self._made_switch = False


def _stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM (then SIGKILL) to the process's group if it leads one, else to it alone."""
    if process.poll() is not None:
        return
    try:
        group = os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)

    send(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait(timeout=10)
