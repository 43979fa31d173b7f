"""Benchmark the batch-assignment solver at production scale and re-check it against scipy.

Run with ``python benchmarks/bench_solver.py`` from the repository root. Array generation is
excluded from the timing because in production the arrays come straight from SQL; only
``solve_assignment`` is timed (median of several runs, to damp scheduler noise).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

# Allow running as a plain script without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provider_app.assignment.solver import solve_assignment  # noqa: E402

N_TASKS = 10_000
N_STAFF = 1_000
CAPACITY = 10
PAIRS_PER_TASK = 50
MAX_PAIR_COST = 10_000
REPEATS = 3
SCIPY_INELIGIBLE = 10**6


def build_instance(rng: np.random.Generator, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Random instance: each task is eligible for PAIRS_PER_TASK distinct staff."""
    staff = np.argpartition(rng.random((weights.size, N_STAFF)), PAIRS_PER_TASK, axis=1)
    pair_staff = staff[:, :PAIRS_PER_TASK].ravel()
    pair_task = np.repeat(np.arange(weights.size), PAIRS_PER_TASK)
    pair_cost = rng.integers(0, MAX_PAIR_COST, pair_task.size)
    capacity = np.full(N_STAFF, CAPACITY)
    return weights, capacity, pair_task, pair_staff, pair_cost


def bench(label: str, instance: tuple[np.ndarray, ...]) -> None:
    """Time REPEATS solves of ``instance`` and print the median."""
    results = []
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        results.append(solve_assignment(*instance))
        timings.append(time.perf_counter() - started)
    result = results[-1]
    n_arcs = instance[2].size
    print(
        f"solver{label}: {N_TASKS} tasks x {N_STAFF} staff, {n_arcs} arcs: "
        f"{statistics.median(timings):.2f} s "
        f"(OR-Tools {statistics.median(r.solve_seconds for r in results):.2f} s), "
        f"assigned {result.n_assigned}, cost {result.total_cost}"
    )


def optimality_check(n_instances: int = 200, size: int = 8) -> None:
    """Compare assigned count and cost with scipy's Hungarian method on small instances."""
    rng = np.random.default_rng(7)
    matches = 0
    for _ in range(n_instances):
        eligible = rng.random((size, size)) < rng.uniform(0.2, 1.0)
        costs = rng.integers(0, 100, (size, size))
        pair_task, pair_staff = np.nonzero(eligible)
        result = solve_assignment(
            np.ones(size, dtype=np.int64),
            np.ones(size, dtype=np.int64),
            pair_task,
            pair_staff,
            costs[pair_task, pair_staff],
        )
        matrix = np.where(eligible, costs, SCIPY_INELIGIBLE)
        rows, cols = linear_sum_assignment(matrix)
        used = eligible[rows, cols]
        if (result.n_assigned, result.total_cost) == (
            int(used.sum()),
            int(matrix[rows, cols][used].sum()),
        ):
            matches += 1
    print(f"optimality vs scipy: {matches}/{n_instances} random {size}x{size} instances match")


def main() -> None:
    rng = np.random.default_rng(2024)
    bench("", build_instance(rng, np.ones(N_TASKS, dtype=np.int64)))
    bench(" (weights 1-3)", build_instance(rng, rng.integers(1, 4, N_TASKS)))
    optimality_check()


if __name__ == "__main__":
    main()
