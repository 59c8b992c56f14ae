"""A/B of the gateway against itself as of a git revision, in interleaved rounds.

Both gateways (today's checkout, and ``--baseline REV`` exported with ``git archive``:
see ``peer_targets.ketch_at``) serve the digits LogisticRegression at the same time;
for each connection count, wrk loads one, then the other, ``--rounds`` times, so that
the machine's noise (a shared 2-core machine) falls on both alike; each goes first in
every other round. The table gives the
median throughput and p99 over the rounds, and their ratios (today / baseline).

    python bench/gateway_ab.py --baseline REV [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from peer_targets import TARGETS, ketch_at
from peers import body, train
from wrk_load import LoadResult, run_wrk


def main(argv: list[str] | None = None) -> int:
    """Load both gateways in interleaved rounds; print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="a git revision of this checkout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    options = parser.parse_args(argv)
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    with tempfile.TemporaryDirectory(prefix="ketch-ab-") as name:
        folder = Path(name)
        paths, rows, _ = train(folder)
        baseline = ketch_at(options.baseline)
        with (
            TARGETS["ketch"].start(folder, paths["logreg"]) as today,
            baseline.start(folder, paths["logreg"]) as before,
        ):
            bodies = [body(values, "oip") for values in rows]
            for running in (today, before):
                run_wrk(running.url, bodies, max(options.connections), 2.0)
            results: dict[tuple[str, int], list[LoadResult]] = {}
            for connections in options.connections:
                pair = [("today", today), ("baseline", before)]
                for round_index in range(options.rounds):
                    # each goes first in every other round: no order favours either
                    for label, running in pair if round_index % 2 == 0 else pair[::-1]:
                        result = run_wrk(running.url, bodies, connections, options.seconds)
                        results.setdefault((label, connections), []).append(result)
    print(f"\ntoday against {options.baseline}, median of {options.rounds} interleaved rounds")
    print(
        "| connections | req/s today | req/s before | ratio | p99 ms today | p99 before | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for connections in options.connections:
        now = results[("today", connections)]
        then = results[("baseline", connections)]
        rate_now = statistics.median(r.throughput for r in now)
        rate_then = statistics.median(r.throughput for r in then)
        p99_now = statistics.median(r.p99_ms for r in now)
        p99_then = statistics.median(r.p99_ms for r in then)
        print(
            f"| {connections} | {rate_now:,.0f} | {rate_then:,.0f} | {rate_now / rate_then:.2f} "
            f"| {p99_now:.1f} | {p99_then:.1f} | {p99_now / p99_then:.2f} |"
        )
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
