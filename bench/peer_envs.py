"""Virtual environments for the systems that ``peers.py`` measures, made on first use.

Each peer gets its own virtualenv under a cache folder (``~/.cache/ketch-bench/peers``
by default, or ``$KETCH_BENCH_CACHE``), never the project's ``.venv``: a peer's
dependencies (Ray, Triton, BentoML, ...) must neither leak into Ketch's nor be bent to
fit them. Packages come from PyPI through pip. scikit-learn is pinned to the version
Ketch's own environment runs, so that one pickled model loads everywhere. A folder is
reused while its requirements are unchanged (a stamp file records them).

    python bench/peer_envs.py [NAME ...]     # install (or check) the environments now
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["PEER_ENVIRONMENTS", "PeerEnvironment", "cache_folder", "ensure_environment"]


def _pinned(name: str) -> str:
    return f"{name}=={metadata.version(name)}"


SKLEARN = _pinned("scikit-learn")


@dataclass(frozen=True)
class PeerEnvironment:
    """A virtualenv's name and the requirements that pip installs into it."""

    name: str
    requirements: tuple[str, ...]

    def stamp(self) -> str:
        """What identifies this environment's contents: its requirements and the Python."""
        text = "\n".join([sys.version, *self.requirements])
        return hashlib.sha256(text.encode()).hexdigest()


PEER_ENVIRONMENTS: dict[str, PeerEnvironment] = {
    environment.name: environment
    for environment in (
        PeerEnvironment(
            # MLServer 1.7 calls asyncio.get_event_loop() in its workers, which uvloop 0.22 refuses
            "mlserver",
            ("mlserver", "mlserver-sklearn", "uvloop<0.22", SKLEARN),
        ),
        PeerEnvironment("litserve", ("litserve", SKLEARN)),
        PeerEnvironment("ray", ("ray[serve,haproxy]", SKLEARN)),
        PeerEnvironment("bentoml", ("bentoml", SKLEARN)),
        PeerEnvironment("pytriton", ("nvidia-pytriton", SKLEARN)),
        PeerEnvironment("granian", ("granian[uvloop]", "starlette", "orjson", "uvloop", SKLEARN)),
    )
}


def cache_folder() -> Path:
    """Where the peers' virtualenvs live."""
    configured = os.environ.get("KETCH_BENCH_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "ketch-bench"
    return base / "peers"


def ensure_environment(environment: PeerEnvironment, *, quiet: bool = True) -> Path:
    """The environment's Python interpreter, creating or updating the virtualenv first."""
    folder = cache_folder() / environment.name
    python = folder / "bin" / "python"
    stamp_file = folder / ".ketch-bench-stamp"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == environment.stamp():
        return python
    print(f"installing {environment.name} into {folder} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("--quiet")
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *environment.requirements], check=True)
    stamp_file.write_text(environment.stamp())
    return python


def main() -> int:
    """Install the named environments (all when none is named)."""
    names = sys.argv[1:] or list(PEER_ENVIRONMENTS)
    for name in names:
        print(ensure_environment(PEER_ENVIRONMENTS[name], quiet=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
