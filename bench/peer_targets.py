"""How ``peers.py`` starts each system it measures, and how a request reaches it.

Every system serves one scikit-learn model (pickled once by ``peers.py``) on
127.0.0.1, configured for batching the way its documentation says, with the same
limits everywhere: at most ``MAX_BATCH`` rows per batch and, where the system waits
for a batch to fill, at most ``WAIT_MS`` of waiting. Peers run in their own
virtualenvs (``peer_envs.py``); Ketch and the uvicorn ceiling run in Ketch's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from peer_envs import PEER_ENVIRONMENTS, ensure_environment

__all__ = [
    "MAX_BATCH",
    "TARGETS",
    "WAIT_MS",
    "Running",
    "Target",
    "descendants",
    "free_port",
    "ketch_at",
]

SERVERS = Path(__file__).parent / "peer_servers"
ROOT = Path(__file__).resolve().parent.parent
MAX_BATCH = 64
"""Rows per batch at most, for every system (the most connections the load uses)."""
WAIT_MS = 5.0
"""How long a system that waits for a batch to fill may wait (ms)."""
BENTOML_MAX_LATENCY_MS = 1000
"""BentoML's latency bound for its adaptive dispatcher (its guide's example value)."""
START_TIMEOUT_S = 240.0
OIP_PATH = "/v2/models/digits/infer"

BodyStyle = Literal["oip", "bentoml", "constant"]


@dataclass(frozen=True)
class Running:
    """A system that answers: where to send requests, and in which body."""

    url: str
    body_style: BodyStyle


@dataclass(frozen=True)
class Target:
    """A system to measure: its name, what kind of row it is, and how to start it."""

    name: str
    kind: Literal["ceiling", "ketch", "peer"]
    start: Callable[[Path, Path], contextlib.AbstractContextManager[Running]]
    """Given the folder holding the model files and the chosen model's pickle."""
    settings: str
    """The batching configuration, as the table and docs/performance.md report it."""


def free_port() -> int:
    """A port nobody listens on now (three in a row are assumed free after it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` now (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        below = children.get(pending.pop(), [])
        found += below
        pending += below
    return found


def _signal_all(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` and every process it started, even those in sessions of their own."""
    started = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    _signal_all(started, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in started):
        time.sleep(0.2)
    _signal_all(started, signal.SIGKILL)


@contextlib.contextmanager
def _process(
    command: list[str], log: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own session, output into ``log``; stop all it started afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            _stop(process)


def _last_lines(log: Path, count: int = 2) -> str:
    """Why a server failed, from its output: its last error line, or else its last lines."""
    with contextlib.suppress(OSError):
        text = log.read_bytes().decode(errors="replace").replace("\\n", "\n")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if re.search(r"\w(Error|Exception)\b", line)]
        return errors[-1][-300:] if errors else " / ".join(lines[-count:])
    return ""


def _probe_body(style: BodyStyle) -> bytes:
    row = [0.0] * 64
    if style == "bentoml":
        return json.dumps({"inputs": [row]}).encode()
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP64", "data": row}
    return json.dumps({"inputs": [tensor]}).encode()


def _wait_until_answering(
    process: subprocess.Popen[bytes], url: str, style: BodyStyle, name: str
) -> None:
    """Poll with a prediction until it answers 200; RuntimeError if the process dies first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    body = _probe_body(style)
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{name} did not answer within {START_TIMEOUT_S:.0f} s")


def _peer_python(name: str) -> Path:
    return ensure_environment(PEER_ENVIRONMENTS[name])


@contextlib.contextmanager
def _script_server(
    name: str,
    command: list[str],
    url: str,
    style: BodyStyle,
    *,
    env: dict[str, str] | None = None,
    cwd: Path = SERVERS,
) -> Iterator[Running]:
    """Start a server, wait until it answers, stop it afterwards; its output goes to a log."""
    log = Path(tempfile.mkdtemp(prefix=f"ketch-peer-{name}-")) / "server.log"
    with _process(command, log, cwd=cwd, env=env) as process:
        try:
            _wait_until_answering(process, url, style, name)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; its output ended: {_last_lines(log)}") from None
        if os.environ.get("KETCH_BENCH_VERBOSE"):
            print(f"{name}: output in {log}", file=sys.stderr)
        yield Running(url, style)
    shutil.rmtree(log.parent, ignore_errors=True)


def _uvicorn_ceiling(folder: Path, model: Path) -> contextlib.AbstractContextManager[Running]:
    port = free_port()
    command = [sys.executable, str(SERVERS / "bare_app.py"), "uvicorn", str(port)]
    return _script_server("uvicorn", command, f"http://127.0.0.1:{port}{OIP_PATH}", "constant")


def _granian_ceiling(folder: Path, model: Path) -> contextlib.AbstractContextManager[Running]:
    port = free_port()
    command = [str(_peer_python("granian")), str(SERVERS / "bare_app.py"), "granian", str(port)]
    return _script_server("granian", command, f"http://127.0.0.1:{port}{OIP_PATH}", "constant")


@contextlib.contextmanager
def _ketch_gateway(
    folder: Path, model: Path, env: dict[str, str] | None = None, label: str = ""
) -> Iterator[Running]:
    """Ketch's gateway with its default batching, supervising one scikit-learn wrapper."""
    from ketch_gateway import config_text, model_table, start_gateway, version_table, write_config

    version = version_table("sklearn", model.with_suffix(".skops"))
    text = config_text(gateway={"log_level": "warning"}, models=[model_table("digits", version)])
    home = folder / f"ketch{label}"  # a folder of its own: its state store is beside it
    home.mkdir(exist_ok=True)
    config = write_config(home, text, f"ketch-{model.stem}.toml")
    with start_gateway(config, echo_stderr=False, env=env) as gateway:
        yield Running(f"{gateway.url}{OIP_PATH}", "oip")


def _ketch(folder: Path, model: Path) -> contextlib.AbstractContextManager[Running]:
    return _ketch_gateway(folder, model)


def ketch_at(revision: str) -> Target:
    """Ketch's gateway as of a git revision of this checkout (an A/B row beside today's).

    The revision's ``sdk`` and ``gateway`` sources are exported (``git archive``, which
    leaves the repository as it is) into a temporary folder and put first on the
    gateway's ``PYTHONPATH``; its wrapper, which the gateway starts without that
    variable, runs this checkout's code.
    """

    @contextlib.contextmanager
    def start(folder: Path, model: Path) -> Iterator[Running]:
        tree = Path(tempfile.mkdtemp(prefix="ketch-baseline-"))
        try:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", revision, "sdk/src", "gateway/src"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            sources = [str(tree / "gateway" / "src"), str(tree / "sdk" / "src")]
            env = {"PYTHONPATH": os.pathsep.join(sources)}
            with _ketch_gateway(folder, model, env, "-baseline") as running:
                yield running
        finally:
            shutil.rmtree(tree, ignore_errors=True)

    return Target(f"ketch@{revision}", "ketch", start, f"as of {revision} (A/B baseline)")


def _mlserver(batching: bool) -> Callable[[Path, Path], contextlib.AbstractContextManager[Running]]:
    @contextlib.contextmanager
    def start(folder: Path, model: Path) -> Iterator[Running]:
        python = _peer_python("mlserver")
        port = free_port()
        root = folder / ("mlserver-batching" if batching else "mlserver")
        (root / "digits").mkdir(parents=True, exist_ok=True)
        (root / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": port + 1,
                    "metrics_port": port + 2,
                }
            )
        )
        settings: dict[str, object] = {
            "name": "digits",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(model)},
        }
        if batching:
            settings |= {"max_batch_size": MAX_BATCH, "max_batch_time": WAIT_MS / 1000}
        (root / "digits" / "model-settings.json").write_text(json.dumps(settings))
        command = [str(python.parent / "mlserver"), "start", str(root)]
        url = f"http://127.0.0.1:{port}{OIP_PATH}"
        with _script_server("mlserver", command, url, "oip", cwd=root) as running:
            yield running

    return start


def _batching_script(
    environment: str, script: str, *, env: dict[str, str] | None = None
) -> Callable[[Path, Path], contextlib.AbstractContextManager[Running]]:
    def start(folder: Path, model: Path) -> contextlib.AbstractContextManager[Running]:
        port = free_port()
        command = [
            str(_peer_python(environment)),
            str(SERVERS / script),
            str(model),
            str(port),
            str(MAX_BATCH),
            str(WAIT_MS),
        ]
        url = f"http://127.0.0.1:{port}{OIP_PATH}"
        return _script_server(environment, command, url, "oip", env=env)

    return start


def _bentoml(folder: Path, model: Path) -> contextlib.AbstractContextManager[Running]:
    python = _peer_python("bentoml")
    port = free_port()
    command = [
        str(python.parent / "bentoml"),
        "serve",
        "bentoml_service:Digits",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        "PEER_MODEL": str(model),
        "PEER_MAX_BATCH": str(MAX_BATCH),
        "PEER_MAX_LATENCY_MS": str(BENTOML_MAX_LATENCY_MS),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    return _script_server(
        "bentoml", command, f"http://127.0.0.1:{port}/predict", "bentoml", env=env
    )


_PYTRITON_ENV = {
    "LD_LIBRARY_PATH": ":".join(
        filter(None, [sysconfig.get_config_var("LIBDIR"), os.environ.get("LD_LIBRARY_PATH")])
    )
}
"""Triton's Python-backend stub loads ``libpython3.11.so`` from the library path: without
this it may find the system's (another 3.11 release) under this interpreter's standard
library and fail (``RLock`` has no ``_recursion_count``)."""
_WAIT = f"max batch {MAX_BATCH}, wait {WAIT_MS:g} ms"

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("uvicorn", "ceiling", _uvicorn_ceiling, "bare Starlette + uvicorn, constant answer"),
        Target("granian", "ceiling", _granian_ceiling, "bare Starlette + granian, constant answer"),
        Target("ketch", "ketch", _ketch, "adaptive (AIMD, no wait), 1 gateway process"),
        Target("mlserver", "peer", _mlserver(False), "adaptive batching off"),
        Target("mlserver-batch", "peer", _mlserver(True), f"adaptive batching: {_WAIT}"),
        Target("litserve", "peer", _batching_script("litserve", "litserve_server.py"), _WAIT),
        Target("ray", "peer", _batching_script("ray", "ray_server.py"), f"@serve.batch: {_WAIT}"),
        Target(
            "ray-haproxy",
            "peer",
            _batching_script("ray", "ray_server.py", env={"RAY_SERVE_ENABLE_HA_PROXY": "1"}),
            f"@serve.batch: {_WAIT}; HAProxy ingress",
        ),
        Target(
            "bentoml",
            "peer",
            _bentoml,
            f"batchable API: max batch {MAX_BATCH}, max latency {BENTOML_MAX_LATENCY_MS} ms",
        ),
        Target(
            "pytriton",
            "peer",
            _batching_script("pytriton", "pytriton_server.py", env=_PYTRITON_ENV),
            f"dynamic batcher: {_WAIT} queue delay",
        ),
    )
}
