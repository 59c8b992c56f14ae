"""The admin API, attacked: what each of issue 15's admin attacks gets, as figures.

Starts a real gateway (one digits model, one managed wrapper, an admin token) and,
holding the token, tries what the issue found: a version from an absolute path
outside the models' folder and from ``..``; an import-reference plugin; a pickle
loaded with ``trust_pickle`` (it writes a marker file when it loads: did code
run?); an add whose wrapper fails (the answer, and whether a dead version is left
listed and can be rolled out to); the admin token in a wrapper's environment;
``PUT .../replicas`` with a large count; then, without the token, how many token
guesses per second one client gets checked. Prints one line per attack.

    python bench/admin_attacks.py [--legacy] [--replicas 10] [--guess-seconds 3]

``--legacy`` writes no ``[admin]`` table, for a gateway from before the admin API
was locked down (which refuses the table).
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ketch_gateway import (
    app_table,
    config_text,
    model_table,
    start_gateway,
    version_table,
    write_config,
)

TOKEN = "bench-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Marker:
    """A pickled object that, when loaded, writes a file: proof that loading ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (f"open({str(self.path)!r}, 'w').write('code ran')",))


def prepare(folder: Path, legacy: bool) -> tuple[Path, Path, Path]:
    """The models' folder, the configuration, and the marker a loaded pickle writes."""
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    models = folder / "models"
    models.mkdir()
    rows, labels = load_digits(return_X_y=True)
    skops.io.dump(LogisticRegression(max_iter=500).fit(rows / 16, labels), models / "digits.skops")
    (models / "notes.skops").write_text("not a model\n")
    marker = folder / "code-ran.txt"
    (models / "evil.pkl").write_bytes(pickle.dumps(Marker(marker)))
    admin = None if legacy else {"model_roots": [str(models)]}
    config = write_config(
        folder,
        config_text(
            gateway={"admin_token": TOKEN},
            admin=admin,
            models=[model_table("digits", version_table("sklearn", models / "digits.skops"))],
            apps=[app_table("digits", ["digits"], 5000)],
        ),
    )
    return models, config, marker


def send(admin: httpx.Client, method: str, url: str, **fields: Any) -> httpx.Response:
    """The answer, asked once more when the kept-alive connection was reset.

    An old gateway closed the connection after each 500.
    """
    try:
        return admin.request(method, url, **fields)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return admin.request(method, url, **fields)


def outcome(response: httpx.Response) -> str:
    text = response.json().get("error", "ok") if response.content else ""
    return f"{response.status_code} {text[:150]}"


def attack(admin: httpx.Client, models: Path, marker: Path, replicas: int) -> None:
    def version(name: str, **fields: Any) -> httpx.Response:
        body = {"version": name, "plugin": "sklearn", "count": 1, **fields}
        return send(admin, "POST", "/admin/models/digits/versions", json=body)

    print("absolute path outside:", outcome(version("a", path="/etc/hostname")))
    print("'..' escape:          ", outcome(version("b", path=f"{models}/../../../etc/hostname")))
    print(
        "import-reference plugin:",
        outcome(version("c", path=str(models / "digits.skops"), plugin="json:loads")),
    )
    pickled = version("d", path=str(models / "evil.pkl"), options={"trust_pickle": "true"})
    print("trust_pickle:         ", outcome(pickled), "| code ran:", marker.exists())
    failed = version("e", path=str(models / "notes.skops"))
    digits = send(admin, "GET", "/admin/models").json()["models"][0]
    listed = [v["version"] for v in digits["versions"]]
    rollout = send(admin, "PUT", "/admin/models/digits/version", json={"version": "e"})
    print(
        "failed add:           ",
        outcome(failed),
        f"| listed after: {'e' in listed} | rollout to it: {rollout.status_code}",
    )
    send(admin, "PUT", "/admin/models/digits/version", json={"version": "1"})
    digits = send(admin, "GET", "/admin/models").json()["models"][0]
    pid = digits["versions"][0]["wrappers"][0]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    leaked = any(entry.startswith(b"KETCH_ADMIN_TOKEN=") for entry in environ)
    print("token in a wrapper's environment:", leaked, f"({len(environ)} variables)")
    started = time.monotonic()
    replicas_path = "/admin/models/digits/versions/1/replicas"
    scaled = send(admin, "PUT", replicas_path, json={"count": replicas})
    print(
        f"PUT replicas {replicas}:     ",
        outcome(scaled),
        f"| {time.monotonic() - started:.1f} s",
    )
    send(admin, "PUT", replicas_path, json={"count": 1})


def guesses(url: str, seconds: float) -> None:
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            answer = client.get("/admin/models", headers={"Authorization": "Bearer guess"})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    checked = statuses.get(403, 0)
    print(
        f"token guesses in {seconds:g} s: {sum(statuses.values())} sent, {checked} checked "
        f"({checked / seconds:.1f}/s), answers {dict(sorted(statuses.items()))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legacy", action="store_true", help="no [admin] table")
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--guess-seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        models, config, marker = prepare(Path(temporary), args.legacy)
        env = {"KETCH_ADMIN_TOKEN": TOKEN}
        with (
            start_gateway(config, env=env, echo_stderr=False) as gateway,
            httpx.Client(base_url=gateway.url, headers=AUTH, timeout=300) as admin,
        ):
            attack(admin, models, marker, args.replicas)
            guesses(gateway.url, args.guess_seconds)


if __name__ == "__main__":
    main()
