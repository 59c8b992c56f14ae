"""A small Ketch cluster on a bed: real gateways, wrappers, Redis and DNS, each on a host.

:class:`Cluster` builds, on a :class:`~cluster.netbed.NetBed`, the pieces of a
production deployment: a DNS server (dnsmasq) answering a headless Service's name
with the address of each wrapper host that is "ready", Redis, wrapper hosts that
each run ``ketch serve`` on the digits model, and gateway hosts that each run
``ketch gateway`` over the same Redis, resolving the wrappers through DNS. The
multi-host tests and ``bench/cluster.py`` both use it.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from cluster.bed_services import DnsServer, start_redis
from cluster.netbed import Host, NetBed
from ketch.process import READY_PREFIX, ChildProcess, start_child
from ketch_gateway.cli import READY_PREFIX as GATEWAY_READY_PREFIX
from ketch_gateway.control.process import GatewayProcess

__all__ = [
    "ADMIN_TOKEN",
    "AUTH",
    "GATEWAY_PORT",
    "PUBLISHED",
    "SERVICE",
    "WRAPPER_HOSTS",
    "WRAPPER_PORT",
    "Cluster",
    "gateway_toml",
    "replica_addresses",
    "wait_until",
]

SERVICE: Final = "digits-v1.models.ketch.test"
"""The headless Service's name: it resolves to every ready wrapper host."""
WRAPPER_PORT: Final = 8001
GATEWAY_PORT: Final = 8080
WRAPPER_HOSTS: Final = ("wrapper-1", "wrapper-2", "wrapper-3", "wrapper-4")
PUBLISHED: Final = WRAPPER_HOSTS[:3]
"""The wrapper hosts in DNS at first; the fourth joins in a test."""
ADMIN_TOKEN: Final = "cluster-admin-token"
AUTH: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def gateway_toml(
    redis_url: str,
    *,
    resolve_every_s: float = 5.0,
    latency_objective_ms: float = 1000.0,
    extra_apps: str = "",
) -> str:
    """A gateway's configuration: digits v1 at ``dns:SERVICE``, v2 at the same wrappers.

    Version 2 exists so that a rollout and a rollback can be told apart: it is the
    same model, reached under the same name (the wrappers answer any version).
    """
    return f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"
state = "{redis_url}"
resolve_every_s = {resolve_every_s}

[[models]]
name = "digits"
version = "2"
timeout_ms = 10000
  [[models.versions]]
  version = "1"
  addresses = ["dns:{SERVICE}:{WRAPPER_PORT}"]
  [[models.versions]]
  version = "2"
  addresses = ["dns:{SERVICE}:{WRAPPER_PORT}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = {latency_objective_ms}
default_output = -1
{extra_apps}
"""


@dataclass
class Cluster:
    """The hosts and processes of one Ketch cluster on ``bed``; files go under ``folder``."""

    bed: NetBed
    folder: Path
    model: Path
    dns: DnsServer = field(init=False)
    redis_host: Host = field(init=False)
    redis_url: str = field(init=False)
    redis_process: subprocess.Popen[Any] = field(init=False)
    wrappers: dict[str, ChildProcess] = field(default_factory=dict)
    gateways: dict[str, GatewayProcess] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    _prefixes: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.dns = DnsServer(self.bed, self.bed.add_host("dns"), self.folder / "dns")
        self.redis_host = self.bed.add_host("redis")
        self.ensure_redis()

    def ensure_redis(self) -> None:
        """Start Redis (again, from its append-only file) unless it runs."""
        if getattr(self, "redis_url", None) and self.redis_process.poll() is None:
            return
        self.redis_url = start_redis(self.bed, self.redis_host, self.folder / "redis")
        self.redis_process = self.redis_host.processes[-1]

    def kill_redis(self) -> None:
        """Kill Redis outright (SIGKILL): what it acknowledged is in its append-only file."""
        os.killpg(self.redis_process.pid, signal.SIGKILL)
        self.redis_process.wait(timeout=10)

    def state_url(self) -> str:
        """The Redis URL with a key prefix no other test of the module used."""
        return f"{self.redis_url}?prefix=t{next(self._prefixes)}"

    def host(self, name: str) -> Host:
        """The host called ``name``, added (resolving through the bed's DNS) if new."""
        found = self.bed.hosts.get(name)
        return found or self.bed.add_host(name, nameserver=self.dns.address)

    def start_wrappers(self, names: Sequence[str]) -> None:
        """``ketch serve`` on each of the hosts ``names`` (all loading at once)."""
        hosts = [self.host(name) for name in names if name not in self.wrappers]

        def start(host: Host) -> None:
            command = self._wrapper_command(host)
            child = start_child(command, READY_PREFIX, label=f"wrapper on {host.name}")
            self.wrappers[host.name] = child
            host.processes.append(child.process)

        with ThreadPoolExecutor(max_workers=len(hosts) or 1) as pool:
            list(pool.map(start, hosts))

    def _wrapper_command(self, host: Host) -> list[str]:
        return host.command(
            [
                sys.executable, "-m", "ketch", "serve", "sklearn", str(self.model),
                "--name", "digits", "--host", host.address, "--port", str(WRAPPER_PORT),
                "--option", "method=predict_proba", "--log-level", "WARNING",
            ]
        )  # fmt: skip

    def wrapper_address(self, name: str) -> str:
        """``host:port`` of the wrapper on host ``name``."""
        return f"{self.bed.hosts[name].address}:{WRAPPER_PORT}"

    def publish(self, names: Iterable[str]) -> None:
        """Make the Service's name resolve to exactly the wrapper hosts ``names``."""
        self.published = list(names)
        self.dns.set_records({SERVICE: [self.bed.hosts[name].address for name in self.published]})

    def start_gateway(self, name: str, config: str, extra_args: Sequence[str] = ()) -> str:
        """``ketch gateway`` with ``config`` on host ``name``; its URL."""
        host = self.host(name)
        path = self.folder / f"{name}.toml"
        path.write_text(config)
        command = host.command(
            [
                sys.executable, "-m", "ketch", "gateway", "--config", str(path),
                "--host", host.address, "--port", str(GATEWAY_PORT), "--log-level", "warning",
                *extra_args,
            ]
        )  # fmt: skip
        child = start_child(
            command, GATEWAY_READY_PREFIX, label=f"gateway on {name}", echo_stderr=True
        )
        gateway = GatewayProcess(child.process, child.ready_line, child.stderr_tail, child.pumps)
        host.processes.append(gateway.process)
        self.gateways[name] = gateway
        return gateway.url

    def close(self) -> None:
        """Stop the gateways and the wrappers (the bed stops the rest)."""
        self.stop_gateways()
        for wrapper in self.wrappers.values():
            wrapper.stop()
        self.wrappers.clear()

    def stop_gateways(self) -> None:
        """Stop every gateway (SIGTERM; they exit 0)."""
        for gateway in self.gateways.values():
            gateway.stop()
        self.gateways.clear()

    def url(self, name: str) -> str:
        """The URL of the gateway on host ``name``."""
        return self.gateways[name].url


def wait_until(check: Callable[[], object], timeout: float, interval: float = 0.05) -> float:
    """Call ``check()`` until it is true; seconds it took. AssertionError past ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(interval)
    return time.monotonic() - started


def replica_addresses(url: str, version: str = "2", healthy_only: bool = True) -> list[str]:
    """The replicas of digits ``version`` that the gateway at ``url`` has in rotation."""
    models = httpx.get(f"{url}/admin/models", headers=AUTH, timeout=5).json()["models"]
    (digits,) = [m for m in models if m["name"] == "digits"]
    (found,) = [v for v in digits["versions"] if v["version"] == version]
    return sorted(r["address"] for r in found["replicas"] if r["healthy"] or not healthy_only)
