"""Tests for the min-cost-flow batch assignment solver.

Optimality is checked against scipy's Hungarian method (``linear_sum_assignment``): ineligible
cells get a cost far above any sum of real costs, so scipy's optimum first maximises the number
of eligible cells used and then minimises their cost, which is exactly the solver's objective.
Staff with capacity > 1 are expanded into that many identical columns for scipy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

# The package is not installed and the suite runs with --noconftest, so make the repo importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from provider_app.assignment.solver import (  # noqa: E402
    MAX_COST,
    AssignmentResult,
    solve_assignment,
)

INELIGIBLE = 10**6


def _arr(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _check_feasible(
    result: AssignmentResult,
    weights: np.ndarray,
    capacity: np.ndarray,
    pair_task: np.ndarray,
    pair_staff: np.ndarray,
    pair_cost: np.ndarray,
) -> None:
    """Every assignment uses an eligible pair, respects capacity and the cost adds up."""
    assigned = np.flatnonzero(result.staff_for_task >= 0)
    staff = result.staff_for_task[assigned]
    cost_of = {(int(t), int(s)): int(c) for t, s, c in zip(pair_task, pair_staff, pair_cost)}
    assert all((int(t), int(s)) in cost_of for t, s in zip(assigned, staff))
    load = np.bincount(staff, weights=weights[assigned], minlength=capacity.size)
    assert np.all(load <= capacity)
    assert result.n_assigned == assigned.size
    assert result.total_cost == sum(cost_of[(int(t), int(s))] for t, s in zip(assigned, staff))


def _scipy_optimum(eligible: np.ndarray, costs: np.ndarray, slots: np.ndarray) -> tuple[int, int]:
    """(max number of eligible pairs, their min cost) with staff j repeated slots[j] times."""
    columns = np.repeat(np.arange(slots.size), slots)
    matrix = np.where(eligible, costs, INELIGIBLE)[:, columns]
    rows, cols = linear_sum_assignment(matrix)
    used = matrix[rows, cols] < INELIGIBLE
    return int(used.sum()), int(matrix[rows, cols][used].sum())


def _random_instance(
    rng: np.random.Generator, n_tasks: int, n_staff: int, density: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    eligible = rng.random((n_tasks, n_staff)) < density
    costs = rng.integers(0, 100, (n_tasks, n_staff))
    pair_task, pair_staff = np.nonzero(eligible)
    return eligible, costs, pair_task, pair_staff


# --- small hand-checked instances -------------------------------------------------------------


def test_task_nobody_is_eligible_for_stays_unassigned() -> None:
    result = solve_assignment(_arr(1, 1), _arr(5), _arr(0), _arr(0), _arr(3))
    assert result.staff_for_task.tolist() == [0, -1]
    assert (result.n_assigned, result.total_cost) == (1, 3)


def test_cheaper_pair_wins() -> None:
    result = solve_assignment(_arr(1), _arr(1, 1), _arr(0, 0), _arr(0, 1), _arr(7, 2))
    assert result.staff_for_task.tolist() == [1]
    assert result.total_cost == 2


def test_capacity_is_respected() -> None:
    # Everyone prefers staff 0 (capacity 2), the rest must go to staff 1.
    weights = _arr(1, 1, 1, 1)
    capacity = _arr(2, 5)
    pair_task = _arr(0, 0, 1, 1, 2, 2, 3, 3)
    pair_staff = _arr(0, 1, 0, 1, 0, 1, 0, 1)
    pair_cost = _arr(0, 9, 1, 9, 2, 9, 3, 9)
    result = solve_assignment(weights, capacity, pair_task, pair_staff, pair_cost)
    assert result.staff_for_task.tolist() == [0, 0, 1, 1]
    _check_feasible(result, weights, capacity, pair_task, pair_staff, pair_cost)


def test_zero_capacity_staff_get_nothing() -> None:
    result = solve_assignment(_arr(1), _arr(0, 1), _arr(0, 0), _arr(0, 1), _arr(0, 50))
    assert result.staff_for_task.tolist() == [1]


def test_maximising_assigned_count_beats_cost() -> None:
    # Cheapest: task 0 -> staff 0 (cost 0) leaving task 1 (only eligible for staff 0) queued.
    # Count first: task 0 must take the expensive staff 1 so both tasks are assigned.
    result = solve_assignment(
        _arr(1, 1), _arr(1, 1), _arr(0, 0, 1), _arr(0, 1, 0), _arr(0, MAX_COST, 1)
    )
    assert result.staff_for_task.tolist() == [1, 0]
    assert result.total_cost == MAX_COST + 1


def test_higher_penalty_task_is_assigned_when_not_all_fit() -> None:
    # One slot, two candidates: the pricier pair wins because its task costs more to queue.
    result = solve_assignment(
        _arr(1, 1),
        _arr(1),
        _arr(0, 1),
        _arr(0, 0),
        _arr(10, 0),
        unassigned_penalty=_arr(100, 5),
    )
    assert result.staff_for_task.tolist() == [0, -1]


def test_weights_consume_capacity() -> None:
    # Staff 0 has 4 units: the weight-3 task plus one weight-1 task; the other spills over.
    weights = _arr(3, 1, 1)
    capacity = _arr(4, 1)
    pair_task = _arr(0, 1, 2, 2)
    pair_staff = _arr(0, 0, 0, 1)
    pair_cost = _arr(0, 0, 0, 5)
    result = solve_assignment(weights, capacity, pair_task, pair_staff, pair_cost)
    assert result.staff_for_task.tolist() == [0, 0, 1]
    _check_feasible(result, weights, capacity, pair_task, pair_staff, pair_cost)


def test_heavier_class_is_served_first_within_a_band() -> None:
    # First-fit decreasing inside one band: the weight-3 task takes the capacity even though the
    # two weight-1 tasks would have assigned more tasks in total.
    result = solve_assignment(_arr(1, 3, 1), _arr(3), _arr(0, 1, 2), _arr(0, 0, 0), _arr(0, 0, 0))
    assert result.staff_for_task.tolist() == [-1, 0, -1]


def test_urgent_light_task_is_not_displaced_by_routine_heavy_work() -> None:
    # Heaviest-first over all tasks gave the only 3 units to the routine weight-3 task.
    result = solve_assignment(
        _arr(1, 3), _arr(3), _arr(0, 1), _arr(0, 0), _arr(0, 0), task_band=_arr(0, 1)
    )
    assert result.staff_for_task.tolist() == [0, -1]


def test_balancing_spreads_work_over_equally_good_people() -> None:
    # Four identical tasks, two identical people with room for all four: balance 2 + 2.
    pair_task = _arr(0, 0, 1, 1, 2, 2, 3, 3)
    pair_staff = _arr(0, 1, 0, 1, 0, 1, 0, 1)
    result = solve_assignment(
        np.ones(4, dtype=np.int64), _arr(4, 4), pair_task, pair_staff, np.zeros(8, dtype=np.int64),
        balance_cost=1000,
    )
    assert np.bincount(result.staff_for_task, minlength=2).tolist() == [2, 2]


def test_balancing_counts_work_already_held() -> None:
    # Staff 0 already holds 3 of 4 units, staff 1 nothing: both new tasks go to staff 1.
    result = solve_assignment(
        _arr(1, 1), _arr(1, 4), _arr(0, 0, 1, 1), _arr(0, 1, 0, 1), _arr(0, 0, 0, 0),
        staff_load=_arr(3, 0), balance_cost=1000,
    )
    assert result.staff_for_task.tolist() == [1, 1]


@pytest.mark.parametrize("seed", range(6))
def test_balanced_costs_match_scipy(seed: int) -> None:
    # Slot k of person j costs balance * (load_j + k + 1) / full_j on top of the pair cost;
    # scipy sees each slot as its own column with that extra cost.
    rng = np.random.default_rng(400 + seed)
    eligible, costs, pair_task, pair_staff = _random_instance(rng, 9, 3, 0.7)
    capacity = rng.integers(0, 4, 3)
    load = rng.integers(0, 3, 3)
    balance = 60
    result = solve_assignment(
        np.ones(9, dtype=np.int64), capacity, pair_task, pair_staff, costs[pair_task, pair_staff],
        staff_load=load, balance_cost=balance,
    )
    columns = np.repeat(np.arange(3), capacity)
    k = np.concatenate([np.arange(c) for c in capacity]).astype(np.int64)
    full = load + capacity
    slot = np.rint(balance * (load[columns] + k + 1) / np.maximum(full[columns], 1)).astype(int)
    matrix = np.where(eligible[:, columns], costs[:, columns] + slot, INELIGIBLE)
    rows, cols = linear_sum_assignment(matrix)
    used = matrix[rows, cols] < INELIGIBLE
    assert result.n_assigned == int(used.sum())
    assigned = np.flatnonzero(result.staff_for_task >= 0)
    staff = result.staff_for_task[assigned]
    ours = int(costs[assigned, staff].sum())
    # Slots are filled cheapest first, so person j's i-th task pays slot i.
    for j in range(3):
        taken = int(np.count_nonzero(staff == j))
        ours += int(sum(
            np.rint(balance * (load[j] + i + 1) / max(full[j], 1)) for i in range(taken)
        ))
    assert ours == int(matrix[rows, cols][used].sum())


def test_empty_inputs() -> None:
    result = solve_assignment(_arr(), _arr(), _arr(), _arr(), _arr())
    assert (result.staff_for_task.size, result.n_assigned, result.total_cost) == (0, 0, 0)
    result = solve_assignment(_arr(1, 2), _arr(3), [], [], [])
    assert result.staff_for_task.tolist() == [-1, -1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pair_staff": _arr(0, 0)}, "same length"),
        ({"pair_task": _arr(2)}, r"pair_task\[0\] = 2"),
        ({"pair_task": _arr(-1)}, r"pair_task\[0\] = -1"),
        ({"pair_staff": _arr(1)}, r"pair_staff\[0\] = 1"),
        ({"staff_capacity": _arr(-1)}, "staff_capacity"),
        ({"task_weights": _arr(0, 1)}, "task_weights"),
        ({"pair_cost": _arr(-1)}, "pair_cost"),
        ({"pair_cost": _arr(MAX_COST + 1)}, "pair_cost"),
        ({"pair_cost": np.array([0.5])}, "integers"),
        ({"task_weights": np.ones((2, 1), dtype=np.int64)}, "one-dimensional"),
        ({"unassigned_penalty": _arr(1)}, "unassigned_penalty has 1"),
        ({"unassigned_penalty": _arr(1, -1)}, "unassigned_penalty"),
        ({"task_band": _arr(0)}, "task_band has 1"),
        ({"staff_load": _arr(-1)}, "staff_load"),
        ({"balance_cost": MAX_COST + 1}, "balance_cost"),
    ],
)
def test_invalid_input_raises(kwargs: dict[str, np.ndarray], message: str) -> None:
    args = {
        "task_weights": _arr(1, 1),
        "staff_capacity": _arr(1),
        "pair_task": _arr(0),
        "pair_staff": _arr(0),
        "pair_cost": _arr(0),
    }
    with pytest.raises(ValueError, match=message):
        solve_assignment(**(args | kwargs))


# --- optimality against scipy -----------------------------------------------------------------


@pytest.mark.parametrize("density", [1.0, 0.5, 0.25])
@pytest.mark.parametrize("seed", range(8))
def test_unit_capacity_matches_scipy(seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    eligible, costs, pair_task, pair_staff = _random_instance(rng, 8, 8, density)
    ones = np.ones(8, dtype=np.int64)
    result = solve_assignment(ones, ones, pair_task, pair_staff, costs[pair_task, pair_staff])
    assert (result.n_assigned, result.total_cost) == _scipy_optimum(eligible, costs, ones)
    if density == 1.0:
        assert result.n_assigned == 8


@pytest.mark.parametrize("density", [1.0, 0.4, 0.15])
@pytest.mark.parametrize("seed", range(8))
def test_multi_capacity_matches_scipy(seed: int, density: float) -> None:
    # 14 tasks, 5 staff with 0-4 slots: covers both spare and insufficient capacity.
    rng = np.random.default_rng(100 + seed)
    eligible, costs, pair_task, pair_staff = _random_instance(rng, 14, 5, density)
    capacity = rng.integers(0, 5, 5)
    weights = np.ones(14, dtype=np.int64)
    pair_cost = costs[pair_task, pair_staff]
    result = solve_assignment(weights, capacity, pair_task, pair_staff, pair_cost)
    assert (result.n_assigned, result.total_cost) == _scipy_optimum(eligible, costs, capacity)
    _check_feasible(result, weights, capacity, pair_task, pair_staff, pair_cost)


@pytest.mark.parametrize("seed", range(6))
def test_equal_weights_are_exact(seed: int) -> None:
    # With one weight class w, a person with capacity c has exactly c // w slots.
    rng = np.random.default_rng(200 + seed)
    eligible, costs, pair_task, pair_staff = _random_instance(rng, 10, 4, 0.6)
    capacity = rng.integers(0, 8, 4)
    weights = np.full(10, 2, dtype=np.int64)
    pair_cost = costs[pair_task, pair_staff]
    result = solve_assignment(weights, capacity, pair_task, pair_staff, pair_cost)
    expected = _scipy_optimum(eligible, costs, capacity // 2)
    assert (result.n_assigned, result.total_cost) == expected


@pytest.mark.parametrize("seed", range(6))
def test_unassigned_penalty_matches_scipy(seed: int) -> None:
    # Objective: assigned pair costs + penalties of queued tasks, count first. Since the count
    # is fixed at the maximum, that equals minimising sum over assigned pairs of (cost - penalty),
    # shifted to stay non-negative, which scipy can solve directly.
    rng = np.random.default_rng(300 + seed)
    eligible, costs, pair_task, pair_staff = _random_instance(rng, 10, 3, 0.7)
    capacity = np.array([2, 2, 2])
    penalty = rng.integers(0, 200, 10)
    result = solve_assignment(
        np.ones(10, dtype=np.int64),
        capacity,
        pair_task,
        pair_staff,
        costs[pair_task, pair_staff],
        unassigned_penalty=penalty,
    )
    shifted = costs - penalty[:, None] + penalty.max()
    count, shifted_cost = _scipy_optimum(eligible, shifted, capacity)
    queued = result.staff_for_task < 0
    assert result.n_assigned == count
    objective = result.total_cost + int(penalty[queued].sum())
    expected = shifted_cost - count * int(penalty.max()) + int(penalty.sum())
    assert objective == expected


# --- feasibility under many random instances --------------------------------------------------


def test_random_instances_respect_capacity_and_eligibility() -> None:
    rng = np.random.default_rng(12345)
    for _ in range(300):
        n_tasks, n_staff = int(rng.integers(1, 40)), int(rng.integers(1, 12))
        _, costs, pair_task, pair_staff = _random_instance(
            rng, n_tasks, n_staff, rng.uniform(0.05, 1.0)
        )
        weights = rng.integers(1, 4, n_tasks)
        capacity = rng.integers(0, 8, n_staff)
        pair_cost = costs[pair_task, pair_staff]
        result = solve_assignment(weights, capacity, pair_task, pair_staff, pair_cost)
        _check_feasible(result, weights, capacity, pair_task, pair_staff, pair_cost)
