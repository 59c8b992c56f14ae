"""Goodput under overload: a slow model at ten (and three) times its capacity, before and after.

A model that answers about 95 rows/s (the reference softmax model, paced by the
pacing plugin at 42 ms per batch, ``max_batch = 4``) sits behind ``ketch gateway``
with the default batching (``aimd``). In one run, for each version of the code,
three phases:

1. ``/v2`` at ten times the model's capacity, open loop (Poisson arrivals),
   ``timeout_ms`` 5000;
2. the Apps API at ten times, latency objective 200 ms, with a default output;
3. the Apps API at three times.

Each phase first measures the capacity: 16 closed-loop clients on
``/v2/models/slow/infer``, the answers per second the model gives when it is kept
busy and nothing expires (measured again before each phase, as the machine's own
load drifts). Goodput counts model answers (HTTP 200 on ``/v2``; ``"default":
false`` on the Apps API) per second over the measured window, against that
capacity. Latency is from each request's scheduled arrival to its answer, so a
load generator that falls behind cannot hide queueing. ``--before DIR`` runs the
same phases, side by side, on the code of another checkout (its ``src`` folders go
first on the gateway's and the wrappers' ``PYTHONPATH``): the before/after figures
of issue 15.

    python bench/overload.py [--seconds 60] [--capacity-seconds 10] [--before DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

RESULTS = Path(__file__).parent / "results"
MODEL = "slow"
BATCH_DELAY_S = 0.042
"""The pacing per batch: four rows in 42 ms is about 95 rows/s."""
MAX_BATCH = 4
TIMEOUT_MS = 5000
OBJECTIVE_MS = 200
CAPACITY_CLIENTS = 16
WARM_S = 3.0
"""Seconds of load before the measured window."""
SEED = 15
IDLE_S = 4.0
PHASES = ("v2-10x", "apps-10x", "apps-3x")

CONFIG = """
[gateway]
log_level = "warning"

[[models]]
name = "{model}"
timeout_ms = {timeout_ms}
  [[models.versions]]
  version = "1"
  plugin = "ketch_conformance.reference:plugin"
  path = "{path}"
  max_batch = {max_batch}

[[apps]]
name = "{model}"
models = ["{model}"]
latency_objective_ms = {objective_ms}
default_output = -1
"""


# --- the load generator (runs in a process of its own) ---------------------------------------


@dataclass
class Answer:
    """One request's fate, and when it was due (seconds from the start of the load).

    The latency counts from when it was sent, so that the load generator's own lag (on
    a busy machine) is not charged to the gateway; ``late`` says what that lag was.
    """

    due: float
    status: int
    latency: float
    default: bool = False
    retry_after: str = ""
    late: float = 0.0
    """How long after it was due the request was sent (the load generator's own lag)."""
    error: str = ""
    """Why there is no status (0): the connection's error."""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Connections:
    """Keep-alive connections to one host, reused one request at a time.

    A connection idle for longer than IDLE_S is closed rather than reused: the server
    (uvicorn: 5 s) may have closed it already.
    """

    host: str
    port: int
    idle: list[tuple[float, Connection]] = field(default_factory=list)

    async def take(self, now: float) -> Connection:
        """The connection used last, if it is fresh enough; else a new one."""
        while self.idle:
            since, connection = self.idle.pop()
            if now - since < IDLE_S:
                return connection
            connection[1].close()
        return await asyncio.open_connection(self.host, self.port)

    def give_back(self, connection: Connection, now: float) -> None:
        """Keep a connection for the next request."""
        self.idle.append((now, connection))


def _status_and_headers(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


async def _exchange(
    connections: Connections, request: bytes, due: float, loop: asyncio.AbstractEventLoop
) -> Answer:
    """Send the request; the answer, timed from when it was sent."""
    try:
        reader, writer = await connections.take(loop.time())
    except OSError as error:
        return Answer(due, 0, 0.0, late=loop.time() - due, error=type(error).__name__)
    sent = loop.time()
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = _status_and_headers(head)
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    except (OSError, asyncio.IncompleteReadError) as error:
        writer.close()
        return Answer(due, 0, loop.time() - sent, late=sent - due, error=type(error).__name__)
    connections.give_back((reader, writer), loop.time())
    default = status == 200 and b'"default":true' in body
    retry_after = headers.get(b"retry-after", b"").decode()
    return Answer(due, status, loop.time() - sent, default, retry_after, sent - due)


def _request_bytes(url: str, body: bytes) -> tuple[Connections, bytes]:
    parsed = urlparse(url)
    head = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return Connections(parsed.hostname or "127.0.0.1", parsed.port or 80), head.encode() + body


async def open_loop(url: str, body: bytes, rate: float, seconds: float) -> list[Answer]:
    """Poisson arrivals at ``rate`` per second for WARM_S + ``seconds``; every answer."""
    loop = asyncio.get_running_loop()
    connections, request = _request_bytes(url, body)
    rng = np.random.default_rng(SEED)
    start = loop.time()
    end = start + WARM_S + seconds
    pending: set[asyncio.Task[Answer]] = set()
    answers: list[Answer] = []
    due = start
    while due < end:
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        task = loop.create_task(_exchange(connections, request, due, loop))
        pending.add(task)
        task.add_done_callback(pending.discard)
        task.add_done_callback(lambda done: answers.append(done.result()))
        due += float(rng.exponential(1.0 / rate))
    while pending:
        await asyncio.wait(set(pending))
    for answer in answers:
        answer.due -= start
    return answers


async def closed_loop(url: str, body: bytes, clients: int, seconds: float) -> list[Answer]:
    """``clients`` clients, each sending its next request when answered; every answer."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + WARM_S + seconds
    answers: list[Answer] = []

    async def client() -> None:
        connections, request = _request_bytes(url, body)
        while (due := loop.time()) < end:
            answer = await _exchange(connections, request, due, loop)
            answer.due -= start
            answers.append(answer)

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


def run_load(mode: str, url: str, body_file: str, amount: float, seconds: float) -> None:
    """Generate load in this process; print the answers as JSON lines."""
    import uvloop

    body = Path(body_file).read_bytes()
    if mode == "open":
        answers = uvloop.run(open_loop(url, body, amount, seconds))
    else:
        answers = uvloop.run(closed_loop(url, body, int(amount), seconds))
    for answer in answers:
        print(json.dumps(answer.__dict__))


def load(mode: str, url: str, body: bytes, amount: float, seconds: float) -> list[Answer]:
    """One load run in a process of its own (so that it does not share the driver's CPU)."""
    with tempfile.NamedTemporaryFile(suffix=".body") as file:
        file.write(body)
        file.flush()
        command = [sys.executable, __file__, "--load", mode, url, file.name, str(amount)]
        output = subprocess.run(
            [*command, str(seconds)], capture_output=True, text=True, check=True
        ).stdout
    return [Answer(**json.loads(line)) for line in output.splitlines()]


# --- what a phase measured --------------------------------------------------------------------


def summarize(answers: list[Answer], seconds: float, capacity: float | None) -> dict[str, Any]:
    """Rates per second over the measured window, goodput against capacity, tail latencies."""
    window = [a for a in answers if WARM_S <= a.due < WARM_S + seconds]
    model = [a for a in window if a.status == 200 and not a.default]
    accepted = [a for a in window if a.status not in (0, 503)]
    retry_after = sorted(int(a.retry_after) for a in window if a.status == 503 and a.retry_after)

    def per_s(items: list[Answer]) -> float:
        return len(items) / seconds

    def p99_ms(items: list[Answer]) -> float | None:
        return float(np.percentile([a.latency for a in items], 99)) * 1000 if items else None

    summary: dict[str, Any] = {
        "offered_per_s": per_s(window),
        "goodput_per_s": per_s(model),
        "defaults_per_s": per_s([a for a in window if a.status == 200 and a.default]),
        "shed_503_per_s": per_s([a for a in window if a.status == 503]),
        "expired_504_per_s": per_s([a for a in window if a.status == 504]),
        "other_per_s": per_s([a for a in window if a.status not in (200, 503, 504)]),
        "p99_accepted_ms": p99_ms(accepted),
        "p99_model_answers_ms": p99_ms(model),
        "p99_all_ms": p99_ms(window),
        "p99_generator_lag_ms": float(np.percentile([a.late for a in window], 99)) * 1000
        if window
        else None,
        "errors": dict(Counter(a.error for a in window if a.error)),
        "retry_after_s": (
            {
                "min": retry_after[0],
                "median": retry_after[len(retry_after) // 2],
                "max": retry_after[-1],
            }
            if retry_after
            else None
        ),
    }
    if capacity:
        summary["goodput_of_capacity"] = summary["goodput_per_s"] / capacity
    return summary


# --- the gateways -----------------------------------------------------------------------------


def source_path(checkout: Path) -> str:
    """The ``src`` folders of a checkout's distributions, for PYTHONPATH."""
    folders = [checkout / "sdk" / "src", checkout / "gateway" / "src"]
    folders += [checkout / "conformance_tests" / "src"]
    folders += sorted((checkout / "plugins").glob("*/src"))
    return os.pathsep.join(str(folder) for folder in folders)


@contextmanager
def gateway_for(config: Path, checkout: Path | None) -> Iterator[str]:
    """A gateway (and its wrapper) running the code of ``checkout`` (None: this one); its URL."""
    from ketch import EXTRA_VARIABLE
    from ketch_conformance import pacing
    from ketch_gateway import start_gateway

    env = {
        EXTRA_VARIABLE: pacing.REFERENCE,
        pacing.PREDICT_DELAY_VARIABLE: f"{MODEL}={BATCH_DELAY_S}",
    }
    if checkout is not None:
        env["PYTHONPATH"] = source_path(checkout)
    with start_gateway(config, env=env, echo_stderr=False) as gateway:
        yield gateway.url


def prepare(folder: Path) -> tuple[Path, bytes, bytes]:
    """The paced model's configuration, and one request body for /v2 and for the Apps API."""
    from ketch_conformance.reference import fit_softmax, save_softmax

    rows = np.random.default_rng(0).uniform(0, 1, (200, 64)).astype(np.float32)
    labels = rows.argmax(axis=1) % 10
    path = save_softmax(fit_softmax(rows, labels, 10, epochs=5), folder / "slow.npz")
    config = folder / "ketch.toml"
    config.write_text(
        CONFIG.format(
            model=MODEL,
            timeout_ms=TIMEOUT_MS,
            path=path,
            max_batch=MAX_BATCH,
            objective_ms=OBJECTIVE_MS,
        )
    )
    row = rows[0].tolist()
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}
    return config, json.dumps({"inputs": [tensor]}).encode(), json.dumps({"input": row}).encode()


@dataclass(frozen=True)
class Overload:
    """A phase: ``times`` the measured capacity, open loop, on ``path`` with ``body``."""

    path: str
    body: bytes
    times: float


def capacity_of(url: str, v2_body: bytes, seconds: float) -> float:
    """Model answers per second with CAPACITY_CLIENTS closed-loop clients on /v2."""
    answers = load("closed", f"{url}/v2/models/{MODEL}/infer", v2_body, CAPACITY_CLIENTS, seconds)
    rate: float = summarize(answers, seconds, None)["goodput_per_s"]
    return rate


def run_phase(
    url: str, phase: Overload, v2_body: bytes, args: argparse.Namespace
) -> dict[str, Any]:
    """The capacity, measured just before, then ``phase.times`` that load for ``args.seconds``."""
    capacity = capacity_of(url, v2_body, args.capacity_seconds)
    rate = phase.times * capacity
    answers = load("open", f"{url}{phase.path}", phase.body, rate, args.seconds)
    return {"capacity_per_s": capacity, **summarize(answers, args.seconds, capacity)}


COLUMNS = (
    ("capacity", 8, "capacity_per_s", 1),
    ("offered/s", 9, "offered_per_s", 0),
    ("model/s", 8, "goodput_per_s", 1),
    ("of cap", 7, "goodput_of_capacity", 2),
    ("default/s", 9, "defaults_per_s", 1),
    ("503/s", 7, "shed_503_per_s", 1),
    ("504/s", 7, "expired_504_per_s", 1),
    ("p99 acc ms", 10, "p99_accepted_ms", 0),
    ("p99 all ms", 10, "p99_all_ms", 0),
)
"""The table's columns: heading, width, the summary's key, decimals."""


def report(results: Mapping[str, Mapping[str, dict[str, Any]]]) -> None:
    """The table, one row per phase and version."""
    heading = "".join(f" {title:>{width}}" for title, width, _, _ in COLUMNS)
    print(f"\n{'phase':<12} {'code':<7}{heading} {'Retry-After s':>13}")
    for phase, by_code in results.items():
        for code, row in by_code.items():
            cells = ""
            for _, width, key, digits in COLUMNS:
                value = row.get(key)
                cells += f" {'-' if value is None else f'{value:.{digits}f}':>{width}}"
            retry = row["retry_after_s"]
            retry_range = f"{retry['min']}-{retry['max']}" if retry else "-"
            print(f"{phase:<12} {code:<7}{cells} {retry_range:>13}")


def main() -> int:
    """Run the benchmark; numbers are reported, never asserted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per overload")
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--only", nargs="+", choices=PHASES, help="run these phases only")
    args = parser.parse_args()
    codes: dict[str, Path | None] = {"after": None}
    if args.before:
        codes = {"before": args.before.resolve(), "after": None}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ketch-overload-") as folder, ExitStack() as stack:
        config, v2_body, app_body = prepare(Path(folder))
        urls = {
            code: stack.enter_context(gateway_for(config, tree)) for code, tree in codes.items()
        }
        v2_path, app_path = f"/v2/models/{MODEL}/infer", f"/apps/{MODEL}/predict"
        overloads = {
            "v2-10x": Overload(v2_path, v2_body, 10.0),
            "apps-10x": Overload(app_path, app_body, 10.0),
            "apps-3x": Overload(app_path, app_body, 3.0),
        }
        for phase, overload in overloads.items():
            if args.only and phase not in args.only:
                continue
            for code, url in urls.items():
                row = run_phase(url, overload, v2_body, args)
                results.setdefault(phase, {})[code] = row
                print(f"{phase} ({code}): {json.dumps(row)}", flush=True)
    report(results)
    print(f"\n({time.monotonic() - started:.0f} s in all; load average {os.getloadavg()[0]:.1f})")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overload.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        mode, url, body_file, amount, seconds = sys.argv[2:7]
        run_load(mode, url, body_file, float(amount), float(seconds))
        sys.exit(0)
    sys.exit(main())
