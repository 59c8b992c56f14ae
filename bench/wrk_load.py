"""One load generator for every HTTP server measured: wrk, with bodies cycled per request.

wrk (a C load generator, Debian's package ``wrk``) keeps N connections busy, each
sending its next request when the last is answered (a closed loop), and records every
latency in an HDR histogram. A Lua script cycles through a file of request bodies, one
per line, so that no system answers the same bytes over and over; it prints wrk's
summary as one JSON line that :func:`run_wrk` parses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "require_wrk", "run_wrk"]

RESULT_PREFIX = "WRK_RESULT "

_SCRIPT = r"""
local requests = {}
local turn = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if #line > 0 then
      requests[#requests + 1] = wrk.format(
        "POST", nil, {["Content-Type"] = "application/json"}, line)
    end
  end
  file:close()
  turn = math.random(#requests)
end

function request()
  turn = turn % #requests + 1
  return requests[turn]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    "WRK_RESULT ", summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int

    @property
    def throughput(self) -> float:
        """Answered requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    """The wrk executable; SystemExit naming how to install it when there is none."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench/peers.py needs wrk: apt-get install wrk")
    return found


def run_wrk(url: str, bodies: list[bytes], connections: int, seconds: float) -> LoadResult:
    """Drive ``url`` with ``connections`` connections for ``seconds``, cycling ``bodies``."""
    wrk = require_wrk()
    with tempfile.TemporaryDirectory(prefix="ketch-wrk-") as folder:
        script = Path(folder) / "bodies.lua"
        script.write_text(_SCRIPT)
        body_file = Path(folder) / "bodies.txt"
        body_file.write_bytes(b"\n".join(bodies) + b"\n")
        command = [
            wrk,
            f"--threads={min(connections, 2)}",
            f"--connections={connections}",
            f"--duration={seconds:g}s",
            "--timeout=10s",
            f"--script={script}",
            url,
            "--",
            str(body_file),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in output.splitlines() if ln.startswith(RESULT_PREFIX)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    summary = json.loads(line[len(RESULT_PREFIX) :])
    errors = sum(summary[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        connections=connections,
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        errors=errors,
    )
