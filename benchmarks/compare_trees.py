"""Two source trees side by side in one run: the merge benchmarks, alternated.

A restructuring must not cost throughput, and on a shared, noisy machine
only figures taken in the same run window compare. This runs the in-process
merge (``bench_merge_inproc.py``) and the end-to-end merge at K=4
(``bench_merge.py``) once per round for each tree, alternating which tree
goes first, each with that tree's own scripts and ``src`` (``PYTHONPATH``),
and prints the medians over the rounds with the ratio after/before.

``--before`` is another checkout (``git worktree add /tmp/before REV``) whose
``src/vsmux/wire`` holds a built C extension (copy this tree's
``_accel*.so`` there when ``_accel.c`` is unchanged); the "after" tree is this
one. Writes ``benchmarks/results/compare_trees.json`` (and leaves each tree's
``bench_merge_inproc.json`` holding its last one-run result).

Usage: python benchmarks/compare_trees.py --before /tmp/before [--rounds 3]
       [--seconds 5] [--transactions 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_info, print_table, write_results

HERE = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 900


def _run(tree: Path, script: str, args: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    command = [sys.executable, str(tree / "benchmarks" / script), *args]
    subprocess.run(
        command, cwd=tree, env=env, check=True, timeout=TIMEOUT_SECONDS, capture_output=True
    )


def _results(tree: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (tree / "benchmarks" / "results" / f"{name}.json").read_text()
    )
    return data


def one_round(tree: Path, seconds: float, transactions: int) -> dict[str, float]:
    """One in-process and one K=4 end-to-end run of ``tree``'s code."""
    _run(tree, "bench_merge_inproc.py", ["--runs", "1", "--transactions", str(transactions)])
    inproc = _results(tree, "bench_merge_inproc")
    name = "compare_trees_merge"
    _run(
        tree,
        "bench_merge.py",
        ["--ks", "4", "--runs", "1", "--seconds", str(seconds), "--name", name],
    )
    (block,) = _results(tree, name)["blocks"]
    # A scratch file of this script's, not a result to keep.
    (tree / "benchmarks" / "results" / f"{name}.json").unlink()
    median = block["median"]
    return {
        "inproc_events_per_cpu_s": inproc["median_events_per_cpu_s"],
        "e2e_k4_events_per_s": median["events_per_s"],
        "e2e_k4_ratio_to_relay": median["ratio_to_relay"],
        "e2e_k4_gateway_cpu_s_per_m_events": median["server_cpu_s_per_m_events"],
        "e2e_k4_gateway_peak_rss_mb": block["gateway_peak_rss_mb"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="end-to-end window per run")
    parser.add_argument("--transactions", type=int, default=4000, help="in-process, per shard")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": HERE}
    samples: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    started = time.time()
    for round_no in range(args.rounds):
        order = ["before", "after"] if round_no % 2 == 0 else ["after", "before"]
        for label in order:
            sample = one_round(trees[label], args.seconds, args.transactions)
            samples[label].append(sample)
            print(f"round {round_no + 1} {label}: {sample}", flush=True)
    metrics = list(samples["after"][0])
    medians = {
        label: {m: statistics.median(s[m] for s in runs) for m in metrics}
        for label, runs in samples.items()
    }
    rows = [
        [
            m,
            f"{medians['before'][m]:,.2f}",
            f"{medians['after'][m]:,.2f}",
            f"{medians['after'][m] / medians['before'][m]:.3f}",
        ]
        for m in metrics
    ]
    print_table(["median over rounds", "before", "after", "after/before"], rows)
    write_results(
        "compare_trees",
        {
            "benchmark": "compare_trees",
            "before": str(trees["before"]),
            "rounds": args.rounds,
            "seconds": args.seconds,
            "transactions": args.transactions,
            "started": started,
            "machine": machine_info(),
            "samples": samples,
            "medians": medians,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
