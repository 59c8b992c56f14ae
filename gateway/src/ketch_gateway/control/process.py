"""Starting ``ketch gateway`` as a child process, for tests, demos and benchmarks."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ketch.process import ChildProcess, start_child
from ketch_gateway.cli import READY_PREFIX

__all__ = ["GatewayProcess", "start_gateway"]


@dataclass
class GatewayProcess(ChildProcess):
    """A running ``ketch gateway``."""

    @property
    def url(self) -> str:
        """``http://host:port`` where the gateway listens."""
        return str(json.loads(self.ready_line[len(READY_PREFIX) :])["url"])


def start_gateway(
    config: str | Path,
    *,
    port: int = 0,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 180.0,
    echo_stderr: bool = True,
) -> GatewayProcess:
    """Start ``ketch gateway --config CONFIG`` and return once it serves."""
    command = [sys.executable, "-m", "ketch", "gateway", "--config", str(config)]
    command += ["--port", str(port), *extra_args]
    child = start_child(
        command,
        READY_PREFIX,
        label=f"ketch gateway --config {config}",
        env=env,
        startup_timeout=startup_timeout,
        echo_stderr=echo_stderr,
    )
    return GatewayProcess(child.process, child.ready_line, child.stderr_tail, child.pumps)
