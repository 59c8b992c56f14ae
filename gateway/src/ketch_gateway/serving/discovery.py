"""Replicas found by DNS: ``dns:HOST:PORT`` stands for every address HOST resolves to.

A Kubernetes headless Service's name resolves to the address of each ready pod.
The gateway keeps one replica (one gRPC channel, one batch size controller) per
address, so that every pod gets batches sized to its own speed. A ClusterIP
Service would not do: its one virtual address puts a gRPC channel, one long-lived
HTTP/2 connection, on whichever pod the connection reached first, and every call
of that channel then goes to that pod.

:class:`DnsReplicas` looks the name up every ``resolve_every_s`` seconds, and at
once when one of its replicas becomes unreachable. New addresses join the
rotation without a restart; addresses that left DNS are drained (their calls in
flight finish) and closed. A lookup that gets no answer (the DNS server is
unreachable) keeps the replicas known so far; a name that does not exist, or has
no address, leaves the version without replicas from it: the version is not ready
until the name resolves, which a log line and ``ketch_dns_addresses`` show.

Names are resolved by the system resolver (``getaddrinfo``, in a worker thread):
it honours ``/etc/resolv.conf`` with its search domains (a pod's short Service
names, such as ``ketch-digits-v1``, need them), ``/etc/hosts`` and ``nsswitch``
exactly as every other program on the host does, and needs no library of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import Counter, Gauge

from ketch_gateway.background import cancel_and_wait

__all__ = [
    "DNS_PREFIX",
    "DiscoverySettings",
    "DnsName",
    "DnsReplicas",
    "LookupFailed",
    "Resolve",
    "check_address",
    "parse_dns_address",
    "resolve_system",
]

_log = logging.getLogger(__name__)

DNS_PREFIX: Final = "dns:"
MIN_LOOKUP_INTERVAL_S: Final = 0.5
"""Failures of several replicas at once trigger one lookup, not one each."""
_NO_SUCH_NAME: Final = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


class LookupFailed(Exception):
    """The resolver gave no answer (its server is unreachable, or failed): try again later."""


Resolve = Callable[[str, int], Awaitable[list[str]]]
"""From a host name and a port to the ``host:port`` addresses it names now ([] for none).

Raises LookupFailed when the resolver gives no answer.
"""


@dataclass(frozen=True)
class DnsName:
    """A ``dns:HOST:PORT`` address: the host name to resolve and the port of every replica."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{DNS_PREFIX}{self.host}:{self.port}"


def parse_dns_address(address: str) -> DnsName | None:
    """The name in a ``dns:HOST:PORT`` address; None for another kind of address.

    Raises ValueError, saying what is expected, when the address starts with
    ``dns:`` but is not ``dns:HOST:PORT``.
    """
    if not address.startswith(DNS_PREFIX):
        return None
    host, separator, port = address[len(DNS_PREFIX) :].rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not dns:HOST:PORT")
    if host.startswith("//") or "/" in host:
        raise ValueError(f"{address!r} is not dns:HOST:PORT (no authority or path)")
    return DnsName(host, int(port))


def check_address(address: str) -> None:
    """Raise ValueError, saying what is expected, unless ``address`` is a replica's address.

    That is ``host:port`` (``[v6]:port``) of one wrapper, or ``dns:HOST:PORT``.
    """
    if parse_dns_address(address) is not None:
        return
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port or dns:HOST:PORT")


async def resolve_system(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA records), with ``port``, sorted."""
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        if error.errno in _NO_SUCH_NAME:
            return []
        raise LookupFailed(error.strerror or str(error)) from None
    return sorted({_with_port(str(info[4][0]), port) for info in found})


def _with_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True)
class DiscoverySettings:
    """How ``dns:`` addresses are resolved.

    :param resolve_every_s: seconds between lookups of each name.
    :param strict: a name that does not resolve when its version starts is an error
        (else the version waits, not ready, until it resolves).
    :param resolve: the resolver (the system's by default).
    """

    resolve_every_s: float = 5.0
    strict: bool = False
    resolve: Resolve = resolve_system


@dataclass(frozen=True)
class _Instruments:
    addresses: Gauge
    failures: Counter


class DnsReplicas:
    """The replicas that one ``dns:`` address names, kept in step with DNS.

    :param join: adds the replica at an address to the version.
    :param leave: drains and removes the replica at an address.
    """

    def __init__(
        self,
        name: DnsName,
        label: str,
        settings: DiscoverySettings,
        *,
        join: Callable[[str], Awaitable[None]],
        leave: Callable[[str], Awaitable[None]],
        addresses: Gauge,
        failures: Counter,
    ) -> None:
        self.name = name
        self.label = label
        self.settings = settings
        self.addresses: list[str] = []
        self.resolved = False
        self._join = join
        self._leave = leave
        self._instruments = _Instruments(addresses, failures)
        self._reported: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Look the name up and follow its answer; whether the lookup was answered."""
        try:
            found = await self.settings.resolve(self.name.host, self.name.port)
        except LookupFailed as error:
            self._instruments.failures.inc()
            self._report(
                "failed",
                f"{self.label}: looking up {self.name} failed ({error}); keeping its "
                f"{len(self.addresses)} known replica(s)",
            )
            return False
        joined = [address for address in found if address not in self.addresses]
        left = [address for address in self.addresses if address not in found]
        self.addresses = list(found)
        self.resolved = bool(found)
        self._instruments.addresses.set(len(found))
        await asyncio.gather(*(self._join(address) for address in joined))
        for address in left:
            await self._leave(address)
        if joined or left:
            _log.info(
                "%s: %s now resolves to %s (joined: %s; left: %s)",
                self.label,
                self.name,
                ", ".join(found) or "nothing",
                ", ".join(joined) or "none",
                ", ".join(left) or "none",
            )
        if found:
            self._report("resolved", None)
        else:
            self._report(
                "unresolved",
                f"{self.label}: {self.name} does not resolve to any address; the version has "
                "no replica from it (not ready) until it does",
            )
        return True

    def _report(self, state: str, message: str | None) -> None:
        """Log a change of state once, not at every lookup."""
        if state != self._reported and message is not None:
            _log.warning("%s", message)
        self._reported = state

    def poke(self) -> None:
        """Look the name up again soon: one of its replicas has become unreachable."""
        self._wake.set()

    def start(self) -> None:
        """Look the name up every ``resolve_every_s`` seconds (and when poked)."""
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.resolve_every_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:
                _log.exception("%s: following %s failed; trying again", self.label, self.name)
            await asyncio.sleep(MIN_LOOKUP_INTERVAL_S)

    async def stop(self) -> None:
        """Stop following the name (its replicas stay until they are removed)."""
        await cancel_and_wait(self._task)
        self._task = None
