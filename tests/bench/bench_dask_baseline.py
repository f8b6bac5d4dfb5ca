"""Baseline: the benchmark graphs as plain Dask futures, without Updraft in the way.

Updraft's own benchmarks run the same three shapes as DAGs; these figures are the floor
they are compared with (what Dask alone costs on the same machine):

- ``chain``: a chain of 100 no-op tasks, each depending on the previous one;
- ``fan_out``: one task, 1,000 tasks that depend on it, one task that joins them all;
- ``layered``: 10,000 tasks in 10 layers of 1,000, each depending on 1-2 random tasks of
  the previous layer (fixed seed, so every run builds the same graph).

Each function takes a connected ``distributed.Client``, builds its graph as futures, waits
for every task and returns the elapsed seconds (first submit to last result). Tasks are
submitted the way a scheduler submits them (``client.submit`` per task for the chain,
``client.map`` per layer otherwise), with ``pure=False`` so nothing is deduplicated.

Run it: ``python tests/bench/bench_dask_baseline.py [--repeat 3] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any


def noop(*_upstream: Any) -> None:
    """A task that does nothing; its arguments are its upstream results."""
    # the result is not used: only the dependency matters


def noop_list(_upstream: list) -> None:
    """A task that does nothing with a list of upstream results (futures resolved by Dask)."""
    # the result is not used: only the dependency matters


def _prefix(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


def chain(client, length: int = 100) -> float:
    """A chain of ``length`` no-op tasks; seconds from the first submit to the last result."""
    prefix = _prefix("chain")
    started = time.perf_counter()
    future = client.submit(noop, key=f"{prefix}-0", pure=False)
    for index in range(1, length):
        future = client.submit(noop, future, key=f"{prefix}-{index}", pure=False)
    future.result()
    return time.perf_counter() - started


def fan_out(client, width: int = 1_000) -> float:
    """One task, ``width`` tasks after it, one join; seconds until the join is done."""
    prefix = _prefix("fan")
    started = time.perf_counter()
    root = client.submit(noop, key=f"{prefix}-root", pure=False)
    middle = client.map(noop, [root] * width, key=[f"{prefix}-{i}" for i in range(width)],
                        pure=False)
    join = client.submit(noop_list, middle, key=f"{prefix}-join", pure=False)
    join.result()
    return time.perf_counter() - started


def layered(client, tasks: int = 10_000, layers: int = 10, seed: int = 0) -> float:
    """``tasks`` no-ops in ``layers`` layers, each on 1-2 tasks of the layer before."""
    from distributed import wait

    rng = random.Random(seed)
    per_layer = tasks // layers
    prefix = _prefix("layered")
    started = time.perf_counter()
    previous = client.map(noop, range(per_layer),
                          key=[f"{prefix}-0-{i}" for i in range(per_layer)], pure=False)
    everything = list(previous)
    for layer in range(1, layers):
        upstream = [rng.sample(previous, rng.choice((1, 2))) for _ in range(per_layer)]
        previous = client.map(noop_list, upstream,
                              key=[f"{prefix}-{layer}-{i}" for i in range(per_layer)],
                              pure=False)
        everything.extend(previous)
    wait(everything)
    elapsed = time.perf_counter() - started
    errors = [f for f in everything if f.status != "finished"]
    if errors:
        raise RuntimeError(f"{len(errors)} tasks did not finish: {errors[0].status}")
    return elapsed


GRAPHS: dict[str, tuple[Callable[..., float], int]] = {
    "chain of 100": (chain, 100),
    "fan-out 1 -> 1,000 -> join": (fan_out, 1_002),
    "10,000 tasks in 10 layers": (layered, 10_000),
}
"""Name -> (function, number of tasks), in the order they are reported."""


def run_all(client, repeat: int = 3) -> dict[str, list[float]]:
    """Run every graph ``repeat`` times on ``client``; seconds per run, by graph name."""
    chain(client, 5)  # warm up: imports, connections, the first task's overhead
    return {name: [function(client) for _ in range(repeat)]
            for name, (function, _count) in GRAPHS.items()}


def main(argv: list[str] | None = None) -> None:
    """Start a LocalCluster, run the graphs and print the figures."""
    from distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=None)
    parser.add_argument("--threads", action="store_true",
                        help="workers as threads of this process (processes=False)")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {"n_workers": args.workers, "processes": not args.threads,
                               "threads_per_worker": args.threads_per_worker,
                               "dashboard_address": "127.0.0.1:0"}
    with LocalCluster(**options) as cluster, Client(cluster) as client:
        threads = sum(client.nthreads().values())
        print(f"LocalCluster: {args.workers} workers, {threads} threads, "
              f"processes={not args.threads}; median of {args.repeat} runs")
        for name, runs in run_all(client, args.repeat).items():
            count = GRAPHS[name][1]
            median = statistics.median(runs)
            print(f"  {name:<28} {median:8.3f} s  {median / count * 1000:7.3f} ms/task  "
                  f"(runs: {', '.join(f'{r:.3f}' for r in runs)})")


if __name__ == "__main__":  # the guard matters: spawned worker processes import this file
    main()
