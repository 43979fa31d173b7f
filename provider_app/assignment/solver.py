"""Optimal batch assignment of queued tasks to eligible staff as a sparse min-cost flow.

This module is deliberately pure (numpy + OR-Tools only, no Flask/SQLAlchemy): the caller turns
SQL rows into flat arrays, and the solver can then be unit-tested, benchmarked and reused from a
background job without an application context.

Network, per weight class (see :func:`solve_assignment` for why there are classes)::

    source --(cap 1, cost 0)--> task --(cap 1, cost c_ij)--> staff --(cap k_j, cost 0)--> sink
                                 \\-------------(cap 1, cost U + p_i, "unassigned")------/

Every task can always reach the sink through its "unassigned" arc, so the problem is feasible for
any input and each task's unit of flow ends up either on exactly one staff arc or unassigned.

Cost scaling the caller should use
----------------------------------
Costs are non-negative integers no larger than :data:`MAX_COST`. Build each pair cost as a
weighted sum of components normalised to ``[0, 1]`` (earlier SLA due time and higher priority
-> lower cost, least over-qualified person, current load, continuity with the same case) and
multiply by :data:`COST_SCALE` before rounding, e.g.
``round(COST_SCALE * (0.5 * due + 0.2 * over_qualified + 0.2 * load + 0.1 * (1 - continuity)))``.
Express ``unassigned_penalty`` on the same scale: it is what leaving the task in the queue costs
compared with a pair cost, so a high-priority task should get a larger penalty. The bound keeps
the internal "unassigned" base penalty (at most ``2 * n * MAX_COST``) far from int64 overflow inside
OR-Tools' cost scaling for any realistic batch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

COST_SCALE = 10_000
"""Recommended multiplier for a ``[0, 1]`` float cost: 1e-4 resolution is finer than any
business rule distinguishes, and it leaves a factor of 100 below :data:`MAX_COST` for
unassigned penalties that must outweigh several pair costs."""

MAX_COST = 1_000_000
"""Upper bound for pair costs and unassigned penalties (see the module docstring)."""


@dataclass(frozen=True)
class AssignmentResult:
    """Outcome of :func:`solve_assignment`.

    ``staff_for_task[i]`` is the staff index assigned to task ``i`` or ``-1`` if it stays queued.
    ``total_cost`` sums the pair costs of the assigned pairs only (penalties of unassigned tasks
    are not included, so it is directly comparable with other assignment methods).
    ``solve_seconds`` is the time spent inside OR-Tools; ``elapsed_seconds`` also covers input
    validation and building the networks, i.e. what the caller actually waits for.
    """

    staff_for_task: np.ndarray
    total_cost: int
    n_assigned: int
    solve_seconds: float
    elapsed_seconds: float


def _int_array(name: str, values: object) -> np.ndarray:
    """Return ``values`` as a 1-D int64 array, refusing floats so unscaled costs fail loudly."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integers, got dtype {arr.dtype} "
            f"(scale float costs by COST_SCALE and round)"
        )
    return arr.astype(np.int64, copy=False)


def _check_range(name: str, arr: np.ndarray, low: int, high: int) -> None:
    """Raise ``ValueError`` naming the first offending position if ``arr`` leaves [low, high]."""
    bad = np.flatnonzero((arr < low) | (arr > high))
    if bad.size:
        pos = int(bad[0])
        raise ValueError(
            f"{name}[{pos}] = {int(arr[pos])} is outside [{low}, {high}] "
            f"({bad.size} invalid value(s))"
        )


def solve_assignment(
    task_weights: np.ndarray,
    staff_capacity: np.ndarray,
    pair_task: np.ndarray,
    pair_staff: np.ndarray,
    pair_cost: np.ndarray,
    unassigned_penalty: np.ndarray | None = None,
) -> AssignmentResult:
    """Assign tasks to staff: maximise the number of assigned tasks, then minimise total cost.

    Args:
        task_weights: ``(n,)`` WIP units each task consumes (integer >= 1).
        staff_capacity: ``(m,)`` remaining WIP units per person (integer >= 0).
        pair_task, pair_staff, pair_cost: parallel ``(k,)`` arrays listing the eligible
            (task, staff) pairs and their integer cost in ``[0, MAX_COST]``. Pairs not listed are
            ineligible. A repeated pair is harmless: the cheaper copy is used.
        unassigned_penalty: optional ``(n,)`` cost in ``[0, MAX_COST]`` of leaving each task
            queued. It only decides *which* tasks stay queued when not all fit (higher priority
            -> higher penalty); it never lowers the number assigned.

    Objective, per weight class: minimise ``sum(assigned pair costs) + sum(penalties of queued
    tasks) + U * (number queued)``, where the base penalty ``U = n_class * max_cost +
    sum(penalties) + 1`` exceeds any change in the other two terms that one extra assigned task
    can cause. So a solution assigning more tasks is always cheaper: the count is maximised
    first, exactly, without a separate max-flow pass.

    Weights: a flow unit cannot consume ``w`` units of a person's capacity, so tasks are solved
    per weight class, heaviest first; for weight ``w`` a person offers ``capacity // w`` slots,
    and the capacity used is deducted before the next class. Heavy tasks go first because they
    are the hardest to fit once capacity is fragmented. This is exact when all tasks have the same
    weight and a greedy-by-class approximation otherwise (a lighter task never displaces a
    heavier one, even if that would assign more tasks in total).

    Raises:
        ValueError: on inconsistent lengths, out-of-range indexes, negative or oversized values,
            non-integer arrays, or if OR-Tools reports the cost range as too large.
        RuntimeError: if OR-Tools returns any other non-optimal status (not expected, since
            the unassigned arcs make every instance feasible).
    """
    started = time.perf_counter()
    weights = _int_array("task_weights", task_weights)
    capacity = _int_array("staff_capacity", staff_capacity)
    p_task = _int_array("pair_task", pair_task)
    p_staff = _int_array("pair_staff", pair_staff)
    p_cost = _int_array("pair_cost", pair_cost)
    n, m = weights.size, capacity.size
    if unassigned_penalty is None:
        penalty = np.zeros(n, dtype=np.int64)
    else:
        penalty = _int_array("unassigned_penalty", unassigned_penalty)
        if penalty.size != n:
            raise ValueError(
                f"unassigned_penalty has {penalty.size} entries but there are {n} tasks"
            )
    if not p_task.size == p_staff.size == p_cost.size:
        raise ValueError(
            "pair_task, pair_staff and pair_cost must have the same length, got "
            f"{p_task.size}, {p_staff.size} and {p_cost.size}"
        )
    _check_range("task_weights", weights, 1, np.iinfo(np.int32).max)
    _check_range("staff_capacity", capacity, 0, np.iinfo(np.int32).max)
    _check_range("pair_task", p_task, 0, n - 1)
    _check_range("pair_staff", p_staff, 0, m - 1)
    _check_range("pair_cost", p_cost, 0, MAX_COST)
    _check_range("unassigned_penalty", penalty, 0, MAX_COST)

    staff_for_task = np.full(n, -1, dtype=np.int64)
    remaining = capacity.copy()
    total_cost = 0
    solve_seconds = 0.0
    pair_weight = weights[p_task]
    for w in np.unique(weights)[::-1]:
        tasks = np.flatnonzero(weights == w)
        in_class = np.flatnonzero(pair_weight == w)
        chosen, cost, seconds = _solve_class(
            tasks,
            remaining // w,
            p_task[in_class],
            p_staff[in_class],
            p_cost[in_class],
            penalty[tasks],
        )
        solve_seconds += seconds
        picked = in_class[chosen]
        staff_for_task[p_task[picked]] = p_staff[picked]
        remaining -= w * np.bincount(p_staff[picked], minlength=m)
        total_cost += cost

    return AssignmentResult(
        staff_for_task=staff_for_task,
        total_cost=total_cost,
        n_assigned=int(np.count_nonzero(staff_for_task >= 0)),
        solve_seconds=solve_seconds,
        elapsed_seconds=time.perf_counter() - started,
    )


def _solve_class(
    tasks: np.ndarray,
    slots: np.ndarray,
    p_task: np.ndarray,
    p_staff: np.ndarray,
    p_cost: np.ndarray,
    penalty: np.ndarray,
) -> tuple[np.ndarray, int, float]:
    """Solve one weight class; return (positions of the used pairs, their cost, solve seconds).

    ``tasks`` are global task indexes of the class, ``slots`` the number of tasks of this class
    each person can still take, and the pair arrays hold only pairs of this class's tasks.
    Nodes: local tasks ``0..n-1``, staff ``n..n+m-1``, then source and sink.
    """
    n, m = tasks.size, slots.size
    if n == 0 or p_task.size == 0:
        return np.empty(0, dtype=np.int64), 0, 0.0
    local = np.empty(int(tasks.max()) + 1, dtype=np.int32)
    local[tasks] = np.arange(n, dtype=np.int32)
    source, sink = n + m, n + m + 1
    task_nodes = np.arange(n, dtype=np.int32)
    staff_nodes = np.arange(n, n + m, dtype=np.int32)
    base = n * int(p_cost.max()) + int(penalty.sum()) + 1

    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(
        np.full(n, source, dtype=np.int32),
        task_nodes,
        np.ones(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
    )
    pair_arcs = flow.add_arcs_with_capacity_and_unit_cost(
        local[p_task],
        (p_staff + n).astype(np.int32),
        np.ones(p_task.size, dtype=np.int64),
        p_cost,
    )
    flow.add_arcs_with_capacity_and_unit_cost(
        staff_nodes,
        np.full(m, sink, dtype=np.int32),
        slots,
        np.zeros(m, dtype=np.int64),
    )
    flow.add_arcs_with_capacity_and_unit_cost(
        task_nodes,
        np.full(n, sink, dtype=np.int32),
        np.ones(n, dtype=np.int64),
        penalty + base,
    )
    flow.set_nodes_supplies(
        np.array([source, sink], dtype=np.int32), np.array([n, -n], dtype=np.int64)
    )

    started = time.perf_counter()
    status = flow.solve_max_flow_with_min_cost()
    seconds = time.perf_counter() - started
    if status == flow.BAD_COST_RANGE:
        raise ValueError(
            f"costs too large for the solver (base penalty {base} for {n} tasks); "
            "lower the cost scale or split the batch"
        )
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status!r}")
    chosen = np.flatnonzero(flow.flows(np.asarray(pair_arcs, dtype=np.int32)) > 0)
    return chosen, int(p_cost[chosen].sum()), seconds
