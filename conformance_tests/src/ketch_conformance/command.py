"""``ketch conformance``: run the suite on a plugin and print what passed, by tier.

Registered as a ``ketch`` subcommand through the ``ketch.commands`` entry-point
group. It runs pytest in a child process, in an empty folder with a configuration
of its own (so that the current project's pytest settings do not leak in), reads
the suite's JSON report back, prints a table of outcomes by tier and the
failures, and exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ketch_conformance.report import FAILING_OUTCOMES, CheckResult, format_table, read_report
from ketch_conformance.sample_inputs import SampleInputsError, read_inputs_file, read_labels_file

__all__ = ["USAGE_ERROR", "add_conformance_command", "pytest_command", "run_conformance"]

MAX_NAMES = 4
"""How many checks a line of failures names before it counts the rest."""
USAGE_ERROR = 2
"""The exit status when the run's own inputs are at fault (as for a bad command line)."""


def add_conformance_command(commands: Any) -> None:
    """Add ``ketch conformance`` to the ``ketch`` command's sub-parsers."""
    parser = commands.add_parser(
        "conformance",
        help="check a framework plugin against the wrapper contract",
        description=(
            "Run the Ketch conformance suite on PLUGIN with MODEL, in process and through a "
            "real 'ketch serve', and print the checks passed, failed and skipped by tier. "
            "Without MODEL, the plugin's pytest_ketch_conformance_targets hook builds its own. "
            "Exits 1 when any check fails."
        ),
    )
    parser.add_argument("plugin", help="an installed plugin's name or module[:attribute]")
    parser.add_argument("model", nargs="?", help="the model file, directory or URI")
    parser.add_argument("--device", default="cpu", help="where to place the model (default cpu)")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a plugin option"
    )
    parser.add_argument(
        "--inputs",
        metavar="FILE",
        help="sample rows by input name: .npz (text as unicode arrays), .json or .jsonl",
    )
    parser.add_argument("--labels", metavar="FILE", help="one label per sample row: .npy or .json")
    parser.add_argument(
        "--call-timeout",
        type=float,
        metavar="SECONDS",
        help="how long one plugin call may take before its check fails with no answer (default 60)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="certification: any skipped check fails"
    )
    parser.add_argument("--report", metavar="FILE", help="also keep the JSON report here")
    parser.add_argument("--xfail", metavar="FILE", help="expected failures, one check a line")
    parser.add_argument(
        "--verbose", action="store_true", help="show pytest's tracebacks for failures"
    )
    parser.add_argument(
        "-k", dest="select", metavar="EXPRESSION", help="only the checks that match (pytest -k)"
    )
    parser.add_argument(
        "--pytest-args", default="", metavar="ARGS", help="more arguments for pytest, quoted"
    )
    parser.set_defaults(handler=run_conformance)


def _local(path: str | None) -> str | None:
    """``path`` made absolute when it names something here (a URI is left alone)."""
    if path is None:
        return None
    return str(Path(path).resolve()) if Path(path).exists() else path


def pytest_command(args: argparse.Namespace, report: Path, config: Path) -> list[str]:
    """The pytest command line that runs the suite as ``args`` ask."""
    command = [sys.executable, "-m", "pytest", "-c", str(config), "--rootdir", str(config.parent)]
    command += ["-p", "no:cacheprovider", "-q", "--no-summary"]
    command += ["--tb", "short" if args.verbose else "no"]
    command += ["--ketch-plugin", args.plugin, "--ketch-device", args.device]
    command += ["--ketch-report", str(report)]
    for flag, value in (
        ("--ketch-model", _local(args.model)),
        ("--ketch-inputs", _local(args.inputs)),
        ("--ketch-labels", _local(args.labels)),
        ("--ketch-xfail", _local(args.xfail)),
    ):
        if value is not None:
            command += [flag, value]
    for option in args.option:
        command += ["--ketch-option", option]
    if args.call_timeout is not None:
        command += ["--ketch-call-timeout", str(args.call_timeout)]
    if args.strict:
        command.append("--ketch-strict")
    if args.select:
        command += ["-k", args.select]
    return command + shlex.split(args.pytest_args)


def _environment() -> dict[str, str]:
    """The environment, with the current folder importable (for ``module:attribute`` plugins)."""
    paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _gist(message: str) -> str:
    """The message's first line, and what follows a first line that ends with a colon."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    if lines[0].endswith(":"):
        return " ".join(lines[:4])
    return lines[0]


def _print_failures(failing: list[CheckResult]) -> None:
    """Each failure with its message; failures that share a message are listed once."""
    groups: dict[str, list[CheckResult]] = {}
    for result in failing:
        groups.setdefault(_gist(result.message), []).append(result)
    print("\nfailed:")
    for gist, results in groups.items():
        names = [
            f"{result.transport} {result.check}" + (f" [{result.target}]" if result.target else "")
            for result in results
        ]
        if len(names) > MAX_NAMES:
            names = [*names[: MAX_NAMES - 1], f"and {len(names) - MAX_NAMES + 1} more"]
        print(f"  {', '.join(names)}: {gist}")


def _print_summary(results: list[CheckResult], strict: bool) -> int:
    """Print the table and the failures; the number of failed checks."""
    print()
    print(format_table(results))
    failing = [result for result in results if result.outcome in FAILING_OUTCOMES]
    if failing:
        _print_failures(failing)
    expected = [result for result in results if result.outcome == "xfailed"]
    if expected:
        print("\nexpected failures (from --xfail):")
        for result in expected:
            print(f"  {result.transport} {result.check}: {result.message}")
    mode = "strict" if strict else "not strict"
    verdict = "conforms" if not failing else f"does NOT conform: {len(failing)} checks failed"
    print(f"\n{len(results)} checks ({mode}): the plugin {verdict}")
    return len(failing)


def _inputs_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the rows or labels files, before any plugin code runs."""
    try:
        if args.inputs:
            read_inputs_file(args.inputs)
        if args.labels:
            read_labels_file(args.labels)
    except SampleInputsError as error:
        return str(error)
    return None


def _stopped(about: dict[str, Any], status: int, ran: int) -> str:
    """What to say of a run that pytest did not finish (status < 0: killed by that signal)."""
    running = about.get("running")
    where = f" while running {running}" if running else ""
    how = f"was killed by signal {-status}" if status < 0 else f"stopped (exit status {status})"
    return (
        f"\nketch conformance: pytest {how}{where}; the table counts the {ran} checks that "
        "had finished"
    )


def run_conformance(args: argparse.Namespace) -> int:
    """Run the suite as ``args`` ask; 0 when no check failed, 1 when one did.

    A problem with the run's own rows or labels is reported as such, with status 2.
    """
    problem = _inputs_problem(args)
    if problem is not None:
        print(f"ketch conformance: {problem}")
        return USAGE_ERROR
    with tempfile.TemporaryDirectory(prefix="ketch-conformance-") as work:
        config = Path(work, "pytest.ini")
        config.write_text("[pytest]\n", encoding="utf-8")
        report = Path(args.report).resolve() if args.report else Path(work, "report.json")
        command = pytest_command(args, report, config)
        model = args.model or "(the plugin's own targets)"
        print(f"ketch conformance: plugin {args.plugin!r}, model {model}, device {args.device}")
        sys.stdout.flush()
        status = subprocess.run(command, cwd=work, env=_environment(), check=False).returncode
        if not report.exists():
            print(f"ketch conformance: pytest stopped before any check ran (exit status {status})")
            return status or USAGE_ERROR
        about, results = read_report(report)
    if about.get("usage_error"):
        print(f"ketch conformance: {about['usage_error']}")
        return USAGE_ERROR
    failed = _print_summary(results, args.strict)
    if not about.get("finished", True):
        print(_stopped(about, status, len(results)))
        return 128 - status if status < 0 else status or USAGE_ERROR
    if failed:
        return 1
    return 0 if status in (0, 1) else status
