"""``ketch gateway --workers N``: N worker processes on one port, under one parent.

Real processes on 127.0.0.1: the parent, its workers, its managed wrapper and a real
Redis server (the store the workers share). Requests go out on fresh connections, so
that the kernel spreads them over the workers; ``Ketch-Worker`` says which answered.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gateway_test_support import (
    ADMIN_TOKEN,
    AUTH,
    SLOW_PLUGIN,
    alive,
    gateway_env,
    metric,
    redis_server,
    wait_until,
)

from ketch_gateway import (
    ConfigError,
    GatewayProcess,
    app_table,
    config_text,
    model_table,
    parse_config,
    start_gateway,
    version_table,
    write_config,
)

WORKERS = 2


def workers_toml(
    model: Path, state: str, *, plugin: str = "sklearn", socket: str = "shared", **options: str
) -> str:
    """Two workers over ``state``, the model (one managed wrapper) and an app on it."""
    return config_text(
        gateway={
            "admin_token": ADMIN_TOKEN,
            "state": state,
            "workers": WORKERS,
            "worker_socket": socket,
        },
        models=[model_table("digits", version_table(plugin, model, options=options or None))],
        apps=[app_table("digits", ["digits"], 5000)],
    )


@contextlib.contextmanager
def workers_gateway(
    folder: Path, model: Path, **settings: str
) -> Iterator[tuple[GatewayProcess, list[int]]]:
    """A gateway of two workers over a Redis of its own; its process and the workers' pids."""
    with redis_server(folder) as url:
        config = write_config(folder, workers_toml(model, url, **settings))
        with start_gateway(config, env=gateway_env()) as process:
            yield process, list(ready_info(process)["workers"])


def ready_info(process: GatewayProcess) -> dict[str, Any]:
    import json

    from ketch_gateway.cli import READY_PREFIX

    found: dict[str, Any] = json.loads(process.ready_line[len(READY_PREFIX) :])
    return found


def children(pid: int) -> list[tuple[int, str]]:
    """The process ids and command lines of ``pid``'s children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), command))
    return found


def infer_body(row: np.ndarray, datatype: str = "FP64") -> dict[str, Any]:
    return {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": datatype, "data": row.tolist()}]
    }


def predict(url: str, row: np.ndarray, datatype: str = "FP64") -> httpx.Response:
    """One prediction on a connection of its own (so any worker may take it)."""
    body = infer_body(row, datatype)
    return httpx.post(f"{url}/v2/models/digits/infer", json=body, timeout=30)


def workers_seen(url: str, rows: np.ndarray, tries: int = 200) -> set[str]:
    """Which workers answer fresh connections: every one, or those seen in ``tries``."""
    seen: set[str] = set()
    for index in range(tries):
        answer = predict(url, rows[index % len(rows)])
        assert answer.status_code == 200, answer.text
        seen.add(answer.headers["ketch-worker"])
        if len(seen) == WORKERS:
            break
    return seen


@contextlib.contextmanager
def client_per_worker(url: str, tries: int = 200) -> Iterator[dict[str, httpx.Client]]:
    """A client (one kept-alive connection) to each worker, by its index."""
    with contextlib.ExitStack() as stack:
        found: dict[str, httpx.Client] = {}
        for _ in range(tries):
            client = stack.enter_context(httpx.Client(base_url=url, headers=AUTH, timeout=30))
            worker = client.get("/v2/health/live").headers["ketch-worker"]
            found.setdefault(worker, client)
            if len(found) == WORKERS:
                break
        assert len(found) == WORKERS, f"only workers {sorted(found)} answered"
        yield found


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, digits_model: Path
) -> Iterator[tuple[GatewayProcess, list[int]]]:
    with workers_gateway(tmp_path_factory.mktemp("workers"), digits_model) as running:
        yield running


def test_two_workers_serve_the_model_on_one_port(
    two_workers: tuple[GatewayProcess, list[int]], digits: Any, digits_classifier: Any
) -> None:
    process, pids = two_workers
    rows, _ = digits
    assert len(set(pids)) == WORKERS
    assert process.pid not in pids
    answers = [predict(process.url, row) for row in rows[:20]]
    expected = digits_classifier.predict(rows[:20]).tolist()
    assert [a.json()["outputs"][0]["data"][0] for a in answers] == expected
    assert workers_seen(process.url, rows) == {"0", "1"}


def test_the_managed_wrapper_is_started_once_by_the_parent(
    two_workers: tuple[GatewayProcess, list[int]],
) -> None:
    process, pids = two_workers
    kids = children(process.pid)
    wrappers = [pid for pid, command in kids if " serve " in command]
    assert len(wrappers) == 1
    assert sorted(pid for pid, command in kids if " gateway " in command) == sorted(pids)
    for pid in pids:  # the workers start no wrapper of their own
        assert not children(pid)
    with client_per_worker(process.url) as clients:
        replicas = {
            worker: [
                r["address"]
                for r in client.get("/admin/models").json()["models"][0]["versions"][0]["replicas"]
            ]
            for worker, client in clients.items()
        }
    assert replicas["0"] == replicas["1"]
    assert len(replicas["0"]) == 1


def test_metrics_count_every_workers_requests_whichever_answers_the_scrape(
    two_workers: tuple[GatewayProcess, list[int]], digits: Any
) -> None:
    process, _ = two_workers
    rows, _ = digits
    labels = {"surface": "model", "target": "digits", "status": "200"}
    with client_per_worker(process.url) as clients:
        before = metric(clients["0"], "ketch_requests_total", **labels)
        assert workers_seen(process.url, rows, tries=1) <= {"0", "1"}
        for row in rows[:30]:
            assert predict(process.url, row).status_code == 200
        counted = {w: metric(c, "ketch_requests_total", **labels) for w, c in clients.items()}
    assert counted == {"0": before + 31, "1": before + 31}


def test_an_admin_change_through_one_worker_is_applied_by_the_other(
    two_workers: tuple[GatewayProcess, list[int]],
) -> None:
    process, _ = two_workers

    def objective(client: httpx.Client) -> float:
        return float(client.get("/admin/apps").json()["apps"][0]["latency_objective_ms"])

    with client_per_worker(process.url) as clients:
        settings = {"models": ["digits"], "latency_objective_ms": 750}
        changed = clients["0"].put("/admin/apps/digits", json=settings)
        assert changed.status_code == 200, changed.text
        wait_until(lambda: objective(clients["1"]) == 750)
        assert objective(clients["1"]) == 750


def test_a_worker_cannot_launch_wrappers_of_its_own(
    two_workers: tuple[GatewayProcess, list[int]],
) -> None:
    process, _ = two_workers
    scaled = httpx.put(
        f"{process.url}/admin/models/digits/versions/1/replicas",
        json={"count": 2},
        headers=AUTH,
        timeout=30,
    )
    assert scaled.status_code == 409
    assert "--workers" in scaled.json()["error"]


def test_a_killed_worker_is_replaced(tmp_path: Path, digits_model: Path, digits: Any) -> None:
    rows, _ = digits
    with workers_gateway(tmp_path, digits_model) as (process, pids):
        os.kill(pids[0], signal.SIGKILL)
        wait_until(lambda: metric(process.url, "ketch_worker_restarts") == 1)
        assert metric(process.url, "ketch_worker_restarts") == 1
        assert not alive(pids[0])
        assert workers_seen(process.url, rows) == {"0", "1"}
        workers = [pid for pid, command in children(process.pid) if " gateway " in command]
        assert len(workers) == WORKERS
        assert pids[0] not in workers
        assert "gateway worker 0" in "\n".join(process.stderr_tail)


def test_a_killed_wrapper_comes_back_on_its_port_for_every_worker(
    tmp_path: Path, digits_model: Path, digits: Any
) -> None:
    rows, _ = digits
    with workers_gateway(tmp_path, digits_model, socket="reuseport") as (process, _):
        assert workers_seen(process.url, rows) == {"0", "1"}
        [(wrapper, command)] = [k for k in children(process.pid) if " serve " in k[1]]
        os.kill(wrapper, signal.SIGKILL)

        def restarted() -> bool:
            return any(" serve " in c and pid != wrapper for pid, c in children(process.pid))

        wait_until(restarted)
        [(_, again)] = [k for k in children(process.pid) if " serve " in k[1]]
        assert "--port 0" in command
        assert "--port 0" not in again

        def both_answer() -> bool:
            with client_per_worker(process.url) as clients:
                return all(
                    client.post("/v2/models/digits/infer", json=infer_body(rows[0])).status_code
                    == 200
                    for client in clients.values()
                )

        wait_until(both_answer)
        assert both_answer()


def test_sigterm_answers_what_the_workers_accepted_then_stops_everything(
    tmp_path: Path, softmax_model: Path, digits: Any
) -> None:
    rows, _ = digits
    slow = {"plugin": SLOW_PLUGIN, "predict_delay": "1.0"}
    with workers_gateway(tmp_path, softmax_model, **slow) as (process, pids):
        [(wrapper, _)] = [k for k in children(process.pid) if " serve " in k[1]]
        statuses: list[int] = []

        def send(row: np.ndarray) -> None:
            statuses.append(predict(process.url, row, "FP32").status_code)

        senders = [threading.Thread(target=send, args=(rows[i],)) for i in range(8)]
        for sender in senders:
            sender.start()
        wait_until(lambda: metric(process.url, "ketch_requests_in_flight", surface="model") >= 8)
        assert process.stop(timeout=90) == 0
        for sender in senders:
            sender.join(30)
        assert statuses == [200] * 8
        assert not any(alive(pid) for pid in [*pids, wrapper])


def test_workers_refuse_the_sqlite_store_and_name_the_fix(
    tmp_path: Path, digits_model: Path
) -> None:
    text = workers_toml(digits_model, str(tmp_path / "state.sqlite"))
    config = write_config(tmp_path, text)
    command = [sys.executable, "-m", "ketch", "gateway", "--config", str(config), "--port", "0"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 2
    assert "--workers 2 needs a state store the workers share" in finished.stderr
    assert "redis://" in finished.stderr
    assert not (tmp_path / "state.sqlite").exists()


def test_the_cli_overrides_the_files_worker_count(tmp_path: Path, digits_model: Path) -> None:
    text = config_text(
        gateway={"admin_token": ADMIN_TOKEN, "state": str(tmp_path / "state.sqlite")},
        models=[model_table("digits", version_table("sklearn", digits_model))],
    )
    config = write_config(tmp_path, text)
    command = [sys.executable, "-m", "ketch", "gateway", "--config", str(config)]
    command += ["--port", "0", "--workers", "3"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 2
    assert "--workers 3 needs a state store" in finished.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("workers = 0", "workers: must be at least 1, got 0"),
        ('workers = "two"', "workers"),
        ('worker_socket = "fork"', "unknown value 'fork'; expected one of shared, reuseport"),
    ],
)
def test_bad_worker_settings_are_refused_naming_the_key(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"[gateway]\n{setting}\n")


def test_worker_settings_are_read(tmp_path: Path) -> None:
    settings = parse_config('[gateway]\nworkers = 4\nworker_socket = "reuseport"\n').settings
    assert (settings.workers, settings.worker_socket) == (4, "reuseport")
    assert parse_config("").settings.workers == 1
