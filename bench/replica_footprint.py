"""Memory and start-up of one replica per plugin, and of the gateway, each installed alone.

A user installs one plugin (``pip install ketch-sklearn``) and runs ``ketch serve``; what
that replica costs is what its virtualenv lets it import. So each plugin gets its own
virtualenv under the cache folder (``~/.cache/ketch-bench/replicas``, or
``$KETCH_BENCH_CACHE``) holding Ketch's SDK and that one plugin, installed from this
checkout in editable mode with the workspace's pins (``constraints/dev.txt``), so that a
change to Ketch's code is measured without reinstalling. An environment that another
checkout made (another worktree) is made again, or it would measure that checkout's code.
The gateway gets one too.

For each, with a small model built in this process (the ``overhead_scenarios_*.py``
builders), over ``--starts`` starts after one that is not counted (it compiles bytecode):

- start-up: seconds from starting the process to its ready line (median);
- RSS when ready, and after answering one prediction (median, MiB; VmRSS);
- the packages that take longest to import (one extra start under ``-X importtime``):
  what a replica loads, to see what its model does not need.

    python bench/replica_footprint.py [--starts 3] [--only sklearn torch ...]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import Scenario

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
WRAPPER_READY = "KETCH_READY "
GATEWAY_READY = "KETCH_GATEWAY_READY "
START_TIMEOUT_S = 300.0
IMPORTS_SHOWN = 5


@dataclass(frozen=True)
class Replica:
    """What to install into a virtualenv, and the scenario whose model it serves."""

    name: str
    distributions: tuple[str, ...]
    """Folders of this checkout, installed editable (with extras: ``folder[extra]``)."""
    scenario: str
    """An ``overhead_scenarios_*.py`` scenario; empty for the gateway."""


REPLICAS = {
    replica.name: replica
    for replica in (
        Replica("sklearn", ("plugins/sklearn",), "sklearn-logreg"),
        Replica("vw", ("plugins/vw",), "vw-digits-oaa"),
        Replica("lightgbm", ("examples/lightgbm-plugin",), "lightgbm-digits"),
        Replica("onnx", ("plugins/onnx[cpu]",), "onnx-mlp"),
        Replica("torch", ("plugins/torch",), "torch-mlp-torchscript"),
        Replica("tensorflow", ("plugins/tensorflow[cpu]",), "tensorflow-keras-mlp"),
        Replica("gateway", ("gateway",), ""),
    )
}


@dataclass
class Footprint:
    """One replica's measurements, or why there are none."""

    name: str
    startup_s: list[float] = field(default_factory=list)
    rss_ready_mib: list[float] = field(default_factory=list)
    rss_answered_mib: list[float] = field(default_factory=list)
    imports: list[tuple[str, float]] = field(default_factory=list)
    failure: str = ""


def cache_folder() -> Path:
    """Where the replicas' virtualenvs live."""
    configured = os.environ.get("KETCH_BENCH_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "ketch-bench"
    return base / "replicas"


def ensure_environment(replica: Replica) -> Path:
    """The replica's Python, with the SDK and its distributions installed (made on first use)."""
    folder = cache_folder() / replica.name
    python = folder / "bin" / "python"
    projects = ["sdk", *(d.split("[")[0] for d in replica.distributions)]
    stamp_text = "\n".join(
        [str(ROOT), sys.version, *replica.distributions, (ROOT / "constraints/dev.txt").read_text()]
        + [(ROOT / project / "pyproject.toml").read_text() for project in projects]
    )
    stamp = hashlib.sha256(stamp_text.encode()).hexdigest()
    stamp_file = folder / ".ketch-bench-stamp"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return python
    print(f"installing {replica.name} into {folder} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip>=25.1"], check=True)
    editable = [arg for d in ("sdk", *replica.distributions) for arg in ("-e", str(ROOT / d))]
    subprocess.run([*pip, "--constraint", str(ROOT / "constraints/dev.txt"), *editable], check=True)
    stamp_file.write_text(stamp)
    return python


def rss_mib(pid: int) -> float:
    """The process's resident set (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextlib.contextmanager
def started(command: list[str], ready: str, stderr: Path) -> Iterator[tuple[str, float, int]]:
    """Run ``command`` until it prints ``ready``; yield that line, the seconds it took, its pid."""
    begun = time.perf_counter()
    with stderr.open("wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        for line in process.stdout:
            if line.startswith(ready):
                yield line[len(ready) :], time.perf_counter() - begun, process.pid
                return
            if time.monotonic() > deadline:
                break
        tail = " / ".join(stderr.read_text(errors="replace").strip().splitlines()[-3:])
        raise RuntimeError(f"no ready line (status {process.poll()}); its log ends: {tail}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wrapper_command(python: Path, scenario: Scenario) -> list[str]:
    """``ketch serve`` for the scenario's model, in the replica's own Python."""
    command = [str(python), "-m", "ketch", "serve", scenario.plugin, str(scenario.model_path)]
    command += ["--host", "127.0.0.1", "--port", "0"]
    for key, value in scenario.options.items():
        command += ["--option", f"{key}={value}"]
    return command


def gateway_command(python: Path, folder: Path) -> list[str]:
    """``ketch gateway`` with one model served by a wrapper elsewhere (none is started)."""
    from ketch_gateway import config_text, model_table, version_table, write_config

    elsewhere = version_table(addresses=["127.0.0.1:9"])
    text = config_text(gateway={"log_level": "warning"}, models=[model_table("digits", elsewhere)])
    config = write_config(folder, text)
    return [str(python), "-m", "ketch", "gateway", "--config", str(config), "--port", "0"]


def answer_one(ready: str, scenario: Scenario) -> None:
    """Send the wrapper one prediction of one row, so that its first call's memory counts."""
    from ketch import WrapperClient

    fields = json.loads(ready)
    with WrapperClient(fields["address"], model=fields["model"]) as client:
        client.infer({name: rows[:1] for name, rows in scenario.rows.items()}, timeout=60)


def import_times(command: list[str], ready: str, folder: Path) -> list[tuple[str, float]]:
    """The top-level packages that took longest to import, cumulative seconds (one start)."""
    log = folder / "importtime.log"
    with started([command[0], "-X", "importtime", *command[1:]], ready, log):
        pass
    totals: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        with contextlib.suppress(ValueError):
            name = parts[2][1:].rstrip()  # one space, then two more per level of nesting
            if name and not name.startswith(" ") and name != "imported package":
                top = name.strip().split(".")[0]
                totals[top] = totals.get(top, 0.0) + int(parts[1]) / 1e6
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return [(name, round(seconds, 3)) for name, seconds in ranked[:IMPORTS_SHOWN]]


def measure(
    replica: Replica, builders: dict[str, Callable[[Path], Scenario]], starts: int
) -> Footprint:
    """Build the model, then start the replica ``starts`` times (and once for import times)."""
    footprint = Footprint(replica.name)
    print(f"== {replica.name}", file=sys.stderr, flush=True)
    try:
        python = ensure_environment(replica)
        with tempfile.TemporaryDirectory(prefix=f"ketch-footprint-{replica.name}-") as name:
            folder = Path(name)
            scenario = builders[replica.scenario](folder) if replica.scenario else None
            if scenario is None:
                command, ready = gateway_command(python, folder), GATEWAY_READY
            else:
                command, ready = wrapper_command(python, scenario), WRAPPER_READY
            with started(command, ready, folder / "stderr.log"):
                pass  # the first start after installing compiles bytecode: not counted
            for _ in range(starts):
                with started(command, ready, folder / "stderr.log") as (line, seconds, pid):
                    footprint.startup_s.append(seconds)
                    footprint.rss_ready_mib.append(rss_mib(pid))
                    if scenario is not None:
                        answer_one(line, scenario)
                        footprint.rss_answered_mib.append(rss_mib(pid))
            footprint.imports = import_times(command, ready, folder)
    except Exception as error:  # one replica's failure is a row of the table
        footprint.failure = f"{type(error).__name__}: {str(error).strip()[-200:]}"
        print(f"   failed: {footprint.failure}", file=sys.stderr, flush=True)
    return footprint


def table(footprints: list[Footprint]) -> str:
    """The Markdown table of medians."""
    lines = [
        "| replica | start-up (s) | RSS ready (MiB) | RSS answered (MiB) | slowest imports (s) |",
        "|---|---|---|---|---|",
    ]
    for item in footprints:
        if item.failure:
            lines.append(f"| {item.name} | **failed**: {item.failure} | | | |")
            continue
        answered = (
            f"{statistics.median(item.rss_answered_mib):.0f}" if item.rss_answered_mib else "-"
        )
        imports = ", ".join(f"{name} {seconds:.2f}" for name, seconds in item.imports)
        lines.append(
            f"| {item.name} | {statistics.median(item.startup_s):.2f} | "
            f"{statistics.median(item.rss_ready_mib):.0f} | {answered} | {imports} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure each chosen replica; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(REPLICAS))
    options = parser.parse_args(argv)
    from wrapper_overhead import load_scenarios

    builders = load_scenarios()
    chosen = [REPLICAS[name] for name in options.only or REPLICAS]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    footprints = [measure(replica, builders, options.starts) for replica in chosen]
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(table(footprints))
    print(f"\nload average before {' '.join(load_before)}, after {' '.join(load_after)}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"replica_footprint-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {"load": [load_before, load_after], "replicas": [asdict(f) for f in footprints]}
    out.write_text(json.dumps(document, indent=2))
    print(f"saved {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
