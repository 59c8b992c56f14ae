"""How much real plugins' memory moves in the conformance suite's memory scenario.

``no_memory_growth`` fails a process whose memory grows in every one of its rounds
of identical calls by more than a tolerance per call. This measures, for each
scenario of ``bench/wrapper_overhead.py`` (scikit-learn, PyTorch in three formats,
TensorFlow, Vowpal Wabbit, LightGBM), the same scenario the check runs (the
suite's warm-up, then its rounds of the sample batch), in the suite's worker
process (resident memory, the C heap in use, device memory) and in a ``ketch
serve`` process (resident memory), and prints each round's growth per call next
to the tolerance: the tolerance must sit well above every real number, and well
below the 1 MiB a call of a leak the suite must catch.

    python bench/conformance_memory.py                    # every scenario
    python bench/conformance_memory.py --scenario torch-export --repeat 3
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path

from wrapper_overhead import load_scenarios

from ketch import start_wrapper
from ketch_conformance import CheckContext, ConformanceTarget, GrpcSubject, IsolatedSubject
from ketch_conformance.checks.resources import (
    MEMORY_MEASURES,
    MEMORY_TOLERANCE_PER_CALL,
    ROUND_CALLS,
    usage_record,
)
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import Subject

from bench_common import Scenario

SAMPLE_ROWS = 12
KIB = 1024


def _growth_per_call(context: CheckContext) -> dict[str, list[float]]:
    """Each memory measure's growth in each round, in KiB per call (the measures it has)."""
    record = usage_record(context)
    found = {}
    for measure, read in MEMORY_MEASURES:
        values = [read(sample) for sample in record.samples]
        if all(value is not None for value in values):
            counts = [value for value in values if value is not None]
            found[measure] = [
                (later - earlier) / ROUND_CALLS / KIB
                for earlier, later in itertools.pairwise(counts)
            ]
    return found


def _measure(subject: Subject, target: ConformanceTarget) -> dict[str, list[float]]:
    assert target.sample_inputs is not None
    inputs = dict(target.sample_inputs)
    context = CheckContext(subject, inputs, subject.signature.capabilities.tolerance, target)
    return _growth_per_call(context)


def measure_scenario(scenario: Scenario) -> dict[str, dict[str, list[float]]]:
    """The growth per call of each round, by where ("in process", "over gRPC") and measure."""
    rows = take_rows(scenario.rows, slice(0, SAMPLE_ROWS))
    target = ConformanceTarget(
        scenario.plugin, scenario.model_path, options=scenario.options, sample_inputs=rows
    )
    isolated = IsolatedSubject.start(target)
    try:
        results = {"in process": _measure(isolated, target)}
        process = start_wrapper(
            target.plugin, target.model_path, options=target.options, echo_stderr=False
        )
        grpc = GrpcSubject(process, isolated.signature)
        try:
            results["over gRPC"] = _measure(grpc, target)
        finally:
            grpc.close()
            process.stop()
    finally:
        isolated.close()
    return results


def _print(name: str, results: dict[str, dict[str, list[float]]]) -> float:
    worst = 0.0
    for where, measures in results.items():
        for measure, rounds in measures.items():
            cells = "  ".join(f"{value:8.2f}" for value in rounds)
            print(f"{name:<24} {where:<11} {measure:<22} {cells}")
            worst = max(worst, *rounds)
    return worst


def main(argv: list[str] | None = None) -> None:
    """Measure the scenarios asked for, and print each round's growth next to the tolerance."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", help="a scenario's name (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each scenario N times")
    args = parser.parse_args(argv)
    scenarios: dict[str, Callable[[Path], Scenario]] = load_scenarios()
    names = args.scenario or list(scenarios)
    print(f"{'scenario':<24} {'where':<11} {'measure':<22} growth per call in each round (KiB)")
    worst = 0.0
    for name in names:
        with tempfile.TemporaryDirectory(prefix="ketch-memory-") as folder:
            scenario = scenarios[name](Path(folder))
            for _ in range(args.repeat):
                worst = max(worst, _print(name, measure_scenario(scenario)))
    tolerance = MEMORY_TOLERANCE_PER_CALL / KIB
    print(
        f"\nthe most any round grew: {worst:.2f} KiB a call; the tolerance: {tolerance:.0f} KiB "
        f"a call ({tolerance / max(worst, 1e-9):.0f}x that); a leak of 1 MiB a call: 1024 KiB"
    )


if __name__ == "__main__":
    main()
