"""The bed itself: hosts reach each other, DNS follows the hosts file, a cut link is silent."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.bed_services import (
    DnsServer,
    cluster_unavailable_reason,
    resolve_inside,
    start_redis,
    wait_for_port,
)
from cluster.netbed import NetBed

PING = (
    "import socket,sys\n"
    "s = socket.create_connection((sys.argv[1], 6379), timeout=float(sys.argv[2]))\n"
    "s.sendall(b'PING\\r\\n')\n"
    "print(s.recv(64).decode().strip())\n"
)


def ping_from(bed: NetBed, host_name: str, address: str, timeout: float) -> str:
    result = bed.run(bed.hosts[host_name], [sys.executable, "-c", PING, address, str(timeout)])
    return result.stdout.strip() or result.stderr.strip().splitlines()[-1]


def test_hosts_reach_each_other_and_names_follow_the_hosts_file(
    bed: NetBed, tmp_path: Path
) -> None:
    dns_host = bed.add_host("dns")
    dns = DnsServer(bed, dns_host, tmp_path / "dns")
    redis_host = bed.add_host("redis")
    start_redis(bed, redis_host, tmp_path / "redis")
    gateway = bed.add_host("gw", nameserver=dns.address)

    assert ping_from(bed, "gw", redis_host.address, 2.0) == "+PONG"

    name = "digits-v1.models.svc.test"
    dns.set_records({name: [redis_host.address, dns_host.address]})
    assert resolve_inside(bed, gateway, name) == sorted([redis_host.address, dns_host.address])
    dns.set_records({name: [redis_host.address]})
    assert resolve_inside(bed, gateway, name) == [redis_host.address]
    dns.set_records({})
    assert resolve_inside(bed, gateway, name) == []


def test_a_cut_link_drops_packets_silently_and_comes_back(bed: NetBed, tmp_path: Path) -> None:
    redis_host = bed.add_host("redis")
    start_redis(bed, redis_host, tmp_path / "redis")
    bed.add_host("gw")

    bed.cut(redis_host)
    started = time.monotonic()
    answer = ping_from(bed, "gw", redis_host.address, 1.0)
    assert "timed out" in answer  # no reset, no refusal: the host is simply gone
    assert time.monotonic() - started >= 0.9

    bed.restore(redis_host)
    wait_for_port(redis_host.address, 6379)
    assert ping_from(bed, "gw", redis_host.address, 2.0) == "+PONG"


def test_the_test_process_reaches_hosts_and_close_removes_everything(tmp_path: Path) -> None:
    reason = cluster_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with NetBed() as bed:
        host = bed.add_host("redis")
        url = start_redis(bed, host, tmp_path / "redis")
        assert url.startswith("redis://")
        with socket.create_connection((host.address, 6379), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            assert connection.recv(64) == b"+PONG\r\n"
        tag = bed.tag
    namespaces = subprocess.run(
        ["ip", "netns", "list"], check=True, capture_output=True, text=True
    ).stdout
    assert tag not in namespaces
    links = subprocess.run(["ip", "link"], check=True, capture_output=True, text=True).stdout
    assert tag not in links
    assert not any(Path("/etc/netns").glob(f"{tag}-*"))
