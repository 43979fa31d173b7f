"""Tests for qa.sampling: Z1.4 single sampling plans, the switching rules, fixed-rate sampling.

Expected plans are read off the published MIL-STD-105E tables (= ANSI/ASQ Z1.4): Table I
(code letters), Table II-A (normal), II-B (tightened) and II-C (reduced), e.g. the
well-known normal row J (n = 80): 0.65 -> 1/2, 1.0 -> 2/3, 1.5 -> 3/4, 2.5 -> 5/6,
4.0 -> 7/8, 6.5 -> 10/11, 10 -> 14/15, and the "0/1 diagonal" of each table. The structural
tests sweep every cell of every table, so a mistyped cell shows up as a broken invariant even
where no published row is spelled out here.
"""

import math
import os
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# The package is not installed and there is no conftest, so make the repo root importable.
REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from qa.sampling import (  # noqa: E402
    AQL_VALUES,
    DOWN,
    INSPECTION_LEVELS,
    SEVERITIES,
    SWITCH_TO_REDUCED_SCORE,
    UP,
    InspectionDiscontinuedError,
    SwitchState,
    fixed_rate_decision,
    master_table_entry,
    next_state,
    resume_after_corrective_action,
    z14_plan,
)

LETTERS = "ABCDEFGHJKLMNPQR"

# Table I, transcribed independently of the module: lot range -> letters for
# S-1, S-2, S-3, S-4, I, II, III.
TABLE_I = {
    (2, 8): "AAAAAAB",
    (9, 15): "AAAAABC",
    (16, 25): "AABBBCD",
    (26, 50): "ABBCCDE",
    (51, 90): "BBCCCEF",
    (91, 150): "BBCDDFG",
    (151, 280): "BCDEEGH",
    (281, 500): "BCDEFHJ",
    (501, 1200): "CCEFGJK",
    (1201, 3200): "CDEGHKL",
    (3201, 10000): "CDFGJLM",
    (10001, 35000): "CDFHKMN",
    (35001, 150000): "DEGJLNP",
    (150001, 500000): "DEGJMPQ",
    (500001, 10**9): "DEHKNQR",  # "500001 and over"; 10**9 stands for "over"
}

# Sample sizes printed next to each code letter in Tables II-A/B/C.
NORMAL_N = (2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800, 1250, 2000)
REDUCED_N = (2, 2, 2, 3, 5, 8, 13, 20, 32, 50, 80, 125, 200, 315, 500, 800)
SAMPLE_SIZES = {
    "normal": dict(zip(LETTERS, NORMAL_N)),
    "tightened": {**dict(zip(LETTERS, NORMAL_N)), "S": 3150},
    "reduced": dict(zip(LETTERS, REDUCED_N)),
}

# Every Ac/Re pair that appears in each table.
PAIRS = {
    "normal": {(0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (7, 8), (10, 11), (14, 15), (21, 22),
               (30, 31), (44, 45)},
    "tightened": {(0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (8, 9), (12, 13), (18, 19), (27, 28),
                  (41, 42)},
    # Reduced plans proper, plus row A (n = 2 as on normal inspection: normal plans) and
    # row B's 2/4 and 3/5.
    "reduced": {(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (3, 6), (5, 8), (7, 10), (10, 13),
                (14, 17), (21, 24), (1, 2), (2, 3), (3, 4), (5, 6), (7, 8), (10, 11), (14, 15),
                (21, 22), (30, 31), (2, 4), (3, 5)},
}  # fmt: skip

# For each letter, the largest lot Table I maps to it (and at which level), so that plans are
# as rarely as possible cut down to 100 % inspection (only A and B lots are that small).
LARGEST_LOT = {
    "A": (50, "S-1"), "B": (500, "S-1"), "C": (35000, "S-1"), "D": (10**9, "S-1"),
    "E": (10**9, "S-2"), "F": (35000, "S-3"), "G": (500000, "S-3"), "H": (10**9, "S-3"),
    "J": (500000, "S-4"), "K": (10**9, "S-4"), "L": (150000, "I"), "M": (500000, "I"),
    "N": (10**9, "I"), "P": (500000, "II"), "Q": (10**9, "II"), "R": (10**9, "III"),
}  # fmt: skip


def plan_for_letter(letter, aql, severity="normal"):
    """The plan for the largest lot that Table I gives ``letter``."""
    lot_size, level = LARGEST_LOT[letter]
    plan = z14_plan(lot_size, aql, level, severity)
    assert plan.code_letter == letter
    return plan


# ------------------------------------------------------------------------------------------
# Table I
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lot_range", "letters"), TABLE_I.items())
@pytest.mark.parametrize("level_index", range(7))
def test_table_i_code_letter_at_both_ends_of_every_range(lot_range, letters, level_index):
    level = INSPECTION_LEVELS[level_index]
    for lot_size in lot_range:
        assert z14_plan(lot_size, 1.0, level).code_letter == letters[level_index]


def test_lot_of_one_is_read_with_the_first_row_and_inspected_whole():
    plan = z14_plan(1, 6.5)
    assert (plan.code_letter, plan.sample_size, plan.accept, plan.reject) == ("A", 1, 0, 1)
    assert plan.full_inspection


@pytest.mark.parametrize(
    ("lot_size", "level", "letter"),
    [(1000, "II", "J"), (500, "II", "H"), (501, "II", "J"), (1200, "I", "G"), (10000, "III", "M"),
     (3200, "S-4", "G"), (150000, "S-3", "G"), (500001, "S-3", "H"), (90, "S-1", "B")],
)  # fmt: skip
def test_table_i_examples(lot_size, level, letter):
    assert z14_plan(lot_size, 2.5, level).code_letter == letter


# ------------------------------------------------------------------------------------------
# Published plans, Tables II-A/B/C
# ------------------------------------------------------------------------------------------

# (severity, code letter, AQL, letter used, n, Ac, Re)
PUBLISHED = [
    # II-A, row J (n = 80)
    ("normal", "J", 0.15, "J", 80, 0, 1),
    ("normal", "J", 0.25, "H", 50, 0, 1),  # up arrow
    ("normal", "J", 0.40, "K", 125, 1, 2),  # down arrow
    ("normal", "J", 0.65, "J", 80, 1, 2),
    ("normal", "J", 1.0, "J", 80, 2, 3),
    ("normal", "J", 1.5, "J", 80, 3, 4),
    ("normal", "J", 2.5, "J", 80, 5, 6),
    ("normal", "J", 4.0, "J", 80, 7, 8),
    ("normal", "J", 6.5, "J", 80, 10, 11),
    ("normal", "J", 10, "J", 80, 14, 15),
    ("normal", "J", 15, "J", 80, 21, 22),
    ("normal", "J", 25, "H", 50, 21, 22),  # up arrow
    # II-A, the 0/1 diagonal
    ("normal", "A", 6.5, "A", 2, 0, 1),
    ("normal", "B", 4.0, "B", 3, 0, 1),
    ("normal", "C", 2.5, "C", 5, 0, 1),
    ("normal", "D", 1.5, "D", 8, 0, 1),
    ("normal", "E", 1.0, "E", 13, 0, 1),
    ("normal", "F", 0.65, "F", 20, 0, 1),
    ("normal", "G", 0.40, "G", 32, 0, 1),
    ("normal", "H", 0.25, "H", 50, 0, 1),
    ("normal", "K", 0.10, "K", 125, 0, 1),
    ("normal", "L", 0.065, "L", 200, 0, 1),
    ("normal", "M", 0.040, "M", 315, 0, 1),
    ("normal", "N", 0.025, "N", 500, 0, 1),
    ("normal", "P", 0.015, "P", 800, 0, 1),
    ("normal", "Q", 0.010, "Q", 1250, 0, 1),
    # II-A, other cells
    ("normal", "K", 1.0, "K", 125, 3, 4),
    ("normal", "H", 2.5, "H", 50, 3, 4),
    ("normal", "K", 2.5, "K", 125, 7, 8),
    ("normal", "L", 0.65, "L", 200, 3, 4),
    ("normal", "M", 1.0, "M", 315, 7, 8),
    ("normal", "D", 0.65, "F", 20, 0, 1),  # down arrow over E
    ("normal", "E", 0.65, "F", 20, 0, 1),
    ("normal", "G", 0.65, "F", 20, 0, 1),  # the up arrow under 0/1
    ("normal", "H", 0.65, "J", 80, 1, 2),  # the down arrow above 1/2
    ("normal", "F", 1.0, "E", 13, 0, 1),
    ("normal", "E", 4.0, "E", 13, 1, 2),
    ("normal", "F", 10, "F", 20, 5, 6),
    ("normal", "F", 15, "F", 20, 7, 8),
    ("normal", "K", 15, "J", 80, 21, 22),
    ("normal", "R", 0.010, "Q", 1250, 0, 1),
    ("normal", "R", 0.015, "P", 800, 0, 1),
    ("normal", "Q", 0.025, "R", 2000, 1, 2),
    ("normal", "R", 0.65, "R", 2000, 21, 22),
    ("normal", "R", 1.0, "Q", 1250, 21, 22),
    ("normal", "A", 10, "C", 5, 1, 2),  # printed arrow has no plan above: read as down
    ("normal", "A", 15, "B", 3, 1, 2),
    ("normal", "A", 25, "A", 2, 1, 2),
    ("normal", "A", 1000, "A", 2, 30, 31),
    ("normal", "B", 1000, "B", 3, 44, 45),
    ("normal", "C", 1000, "B", 3, 44, 45),
    ("normal", "C", 650, "C", 5, 44, 45),
    ("normal", "D", 400, "D", 8, 44, 45),
    ("normal", "E", 150, "E", 13, 30, 31),
    ("normal", "E", 250, "E", 13, 44, 45),
    ("normal", "F", 65, "F", 20, 21, 22),
    ("normal", "F", 100, "E", 13, 21, 22),
    ("normal", "F", 150, "E", 13, 30, 31),
    # II-B, row J (n = 80)
    ("tightened", "J", 0.25, "J", 80, 0, 1),
    ("tightened", "J", 0.40, "L", 200, 1, 2),  # two down arrows
    ("tightened", "J", 0.65, "K", 125, 1, 2),
    ("tightened", "J", 1.0, "J", 80, 1, 2),
    ("tightened", "J", 1.5, "J", 80, 2, 3),
    ("tightened", "J", 2.5, "J", 80, 3, 4),
    ("tightened", "J", 4.0, "J", 80, 5, 6),
    ("tightened", "J", 6.5, "J", 80, 8, 9),
    ("tightened", "J", 10, "J", 80, 12, 13),
    ("tightened", "J", 15, "J", 80, 18, 19),
    # II-B, the 0/1 diagonal one AQL step to the right of II-A's
    ("tightened", "B", 6.5, "B", 3, 0, 1),
    ("tightened", "C", 4.0, "C", 5, 0, 1),
    ("tightened", "F", 1.0, "F", 20, 0, 1),
    ("tightened", "G", 0.65, "G", 32, 0, 1),
    ("tightened", "K", 0.15, "K", 125, 0, 1),
    ("tightened", "R", 0.010, "R", 2000, 0, 1),
    # II-B, other cells
    ("tightened", "K", 1.0, "K", 125, 2, 3),
    ("tightened", "L", 2.5, "L", 200, 8, 9),
    ("tightened", "K", 15, "J", 80, 18, 19),
    ("tightened", "A", 6.5, "B", 3, 0, 1),
    ("tightened", "A", 10, "D", 8, 1, 2),
    ("tightened", "A", 25, "B", 3, 1, 2),
    ("tightened", "A", 40, "A", 2, 1, 2),
    ("tightened", "G", 1.0, "J", 80, 1, 2),
    ("tightened", "A", 1000, "A", 2, 27, 28),
    ("tightened", "B", 1000, "B", 3, 41, 42),
    ("tightened", "E", 250, "E", 13, 41, 42),
    ("tightened", "R", 0.015, "Q", 1250, 0, 1),
    ("tightened", "Q", 0.025, "S", 3150, 1, 2),  # the extra letter S
    ("tightened", "R", 0.025, "S", 3150, 1, 2),
    ("tightened", "R", 0.040, "R", 2000, 1, 2),
    # II-C, row K (n = 50): the gap plans
    ("reduced", "K", 0.10, "K", 50, 0, 1),
    ("reduced", "K", 0.40, "K", 50, 0, 2),
    ("reduced", "K", 0.65, "K", 50, 1, 3),
    ("reduced", "K", 1.0, "K", 50, 1, 4),
    ("reduced", "K", 1.5, "K", 50, 2, 5),
    ("reduced", "K", 2.5, "K", 50, 3, 6),
    ("reduced", "K", 4.0, "K", 50, 5, 8),
    ("reduced", "K", 6.5, "K", 50, 7, 10),
    ("reduced", "K", 10, "K", 50, 10, 13),
    ("reduced", "K", 15, "J", 32, 10, 13),
    # II-C, other cells
    ("reduced", "C", 2.5, "C", 2, 0, 1),
    ("reduced", "D", 1.5, "D", 3, 0, 1),
    ("reduced", "F", 2.5, "F", 8, 0, 2),
    ("reduced", "G", 2.5, "G", 13, 1, 3),
    ("reduced", "J", 1.0, "J", 32, 1, 3),
    ("reduced", "G", 0.65, "F", 8, 0, 1),
    ("reduced", "H", 0.65, "J", 32, 0, 2),
    ("reduced", "Q", 0.010, "Q", 500, 0, 1),
    ("reduced", "R", 0.010, "Q", 500, 0, 1),
    ("reduced", "R", 0.025, "R", 800, 0, 2),
    ("reduced", "R", 0.65, "R", 800, 10, 13),
    ("reduced", "R", 1.0, "Q", 500, 10, 13),
    ("reduced", "A", 25, "A", 2, 1, 2),
    ("reduced", "B", 25, "B", 2, 1, 3),
    ("reduced", "B", 40, "B", 2, 2, 4),
    ("reduced", "C", 40, "C", 2, 2, 5),
    ("reduced", "B", 100, "A", 2, 5, 6),
    ("reduced", "C", 650, "C", 2, 21, 24),
    ("reduced", "D", 400, "D", 3, 21, 24),
    ("reduced", "E", 150, "E", 5, 14, 17),
    ("reduced", "F", 100, "E", 5, 10, 13),
    ("reduced", "C", 1000, "A", 2, 30, 31),
]


@pytest.mark.parametrize(("severity", "letter", "aql", "used", "n", "ac", "re"), PUBLISHED)
def test_published_plans(severity, letter, aql, used, n, ac, re):
    plan = plan_for_letter(letter, aql, severity)
    assert plan.code_letter == letter
    assert (plan.letter_used, plan.sample_size, plan.accept, plan.reject) == (used, n, ac, re)
    assert plan.table_sample_size == n
    assert not plan.full_inspection


def test_lot_1000_at_aql_1_gives_the_textbook_plan():
    plan = z14_plan(1000, 1.0)
    assert plan.code_letter == plan.letter_used == "J"
    assert (plan.sample_size, plan.accept, plan.reject) == (80, 2, 3)
    assert (plan.lot_size, plan.aql, plan.level, plan.severity) == (1000, 1.0, "II", "normal")


def test_lot_500_is_letter_h_with_50_samples():
    plan = z14_plan(500, 2.5)
    assert (plan.code_letter, plan.sample_size, plan.accept, plan.reject) == ("H", 50, 3, 4)


def test_raw_entries_keep_the_arrows():
    assert master_table_entry("D", 0.65) == DOWN
    assert master_table_entry("G", 0.65) == UP
    assert master_table_entry("J", 0.65) == (1, 2)
    assert master_table_entry("R", 0.010, "tightened") == (0, 1)
    assert master_table_entry("S", 0.025, "tightened") == (1, 2)
    assert master_table_entry("K", 4.0, "reduced") == (5, 8)


def test_letter_s_has_a_single_plan_and_only_in_the_tightened_table():
    plans = {aql: master_table_entry("S", aql, "tightened") for aql in AQL_VALUES}
    assert {aql: entry for aql, entry in plans.items() if entry is not None} == {0.025: (1, 2)}
    for severity in ("normal", "reduced"):
        with pytest.raises(ValueError, match="no code letter 'S'"):
            master_table_entry("S", 0.025, severity)


# ------------------------------------------------------------------------------------------
# Every cell of every table
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", SEVERITIES)
def test_every_entry_resolves_by_walking_its_arrows(severity):
    sizes = SAMPLE_SIZES[severity]
    order = list(sizes)
    for letter in LETTERS:
        for aql in AQL_VALUES:
            plan = plan_for_letter(letter, aql, severity)
            entry = master_table_entry(letter, aql, severity)
            used = plan.letter_used
            # The plan is a printed plan of letter_used's row, with that row's sample size.
            assert master_table_entry(used, aql, severity) == (plan.accept, plan.reject)
            assert plan.table_sample_size == sizes[used]
            assert plan.sample_size == min(sizes[used], plan.lot_size)
            if isinstance(entry, tuple):
                assert used == letter
                continue
            # An arrow leads to the first plan in its direction, passing only the same arrow.
            start, end = order.index(letter), order.index(used)
            assert entry in (DOWN, UP)
            assert (end > start) if entry == DOWN else (end < start)
            step = 1 if end > start else -1
            passed = [master_table_entry(order[i], aql, severity) for i in range(start, end, step)]
            assert set(passed) == {entry}


@pytest.mark.parametrize("severity", SEVERITIES)
def test_every_plan_is_a_pair_printed_in_that_table(severity):
    for letter in SAMPLE_SIZES[severity]:
        for aql in AQL_VALUES:
            entry = master_table_entry(letter, aql, severity)
            if isinstance(entry, tuple):
                assert entry in PAIRS[severity], (letter, aql, entry)
                if severity != "reduced":
                    assert entry[1] == entry[0] + 1


@pytest.mark.parametrize("severity", SEVERITIES)
def test_sample_size_grows_down_each_column_and_ac_along_each_row(severity):
    for aql in AQL_VALUES:
        sizes = [plan_for_letter(letter, aql, severity).table_sample_size for letter in LETTERS]
        assert sizes == sorted(sizes), aql
    for letter in LETTERS:
        accepts = [plan_for_letter(letter, aql, severity).accept for aql in AQL_VALUES]
        assert accepts == sorted(accepts), letter


def test_reduced_table_has_rejection_gaps():
    gaps = {
        master_table_entry(letter, aql, "reduced")
        for letter in LETTERS
        for aql in AQL_VALUES
        if isinstance(master_table_entry(letter, aql, "reduced"), tuple)
    }
    assert {(0, 2), (1, 3), (1, 4), (2, 5), (3, 6), (5, 8), (7, 10), (10, 13)} <= gaps


def test_tightened_is_never_looser_than_normal_at_the_same_sample_size():
    """At a given n and AQL, II-B never accepts more than II-A."""
    for letter in LETTERS:
        for aql in AQL_VALUES:
            normal = master_table_entry(letter, aql, "normal")
            tightened = master_table_entry(letter, aql, "tightened")
            if isinstance(normal, tuple) and isinstance(tightened, tuple):
                assert tightened[0] <= normal[0], (letter, aql)


# ------------------------------------------------------------------------------------------
# Lot-range boundaries x levels x AQLs x severities
# ------------------------------------------------------------------------------------------

BOUNDARY_LOT_SIZES = sorted({size for lot_range in TABLE_I for size in lot_range})
SWEEP_AQLS = (0.1, 0.65, 1.0, 2.5, 4.0, 6.5)


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("level", INSPECTION_LEVELS)
def test_plans_at_every_range_boundary_are_consistent(severity, level):
    sizes = SAMPLE_SIZES[severity]
    for lot_size in BOUNDARY_LOT_SIZES:
        for aql in SWEEP_AQLS:
            plan = z14_plan(lot_size, aql, level, severity)
            assert plan.accept < plan.reject
            assert plan.table_sample_size == sizes[plan.letter_used]
            assert plan.sample_size == min(plan.table_sample_size, lot_size)
            assert plan.full_inspection == (plan.table_sample_size >= lot_size)
            entry = master_table_entry(plan.letter_used, aql, severity)
            assert entry == (plan.accept, plan.reject)
            # A letter whose own entry is a plan is used as is.
            if isinstance(master_table_entry(plan.code_letter, aql, severity), tuple):
                assert plan.letter_used == plan.code_letter


# ------------------------------------------------------------------------------------------
# 100 % inspection, AQL matching, validation
# ------------------------------------------------------------------------------------------


def test_sample_at_least_the_lot_means_100_percent_inspection_with_the_plans_numbers():
    plan = z14_plan(5, 0.65)  # letter A, arrow down to F: n = 20 > 5
    assert (plan.code_letter, plan.letter_used, plan.table_sample_size) == ("A", "F", 20)
    assert (plan.sample_size, plan.accept, plan.reject) == (5, 0, 1)
    assert plan.full_inspection
    exact = z14_plan(20, 0.65, "S-4")  # 16-25 at S-4 is B, arrow down to F: n = 20 = lot
    assert (exact.code_letter, exact.letter_used) == ("B", "F")
    assert exact.table_sample_size == exact.sample_size == 20 and exact.full_inspection


def test_reduced_plan_for_small_lot_is_truncated_too():
    plan = z14_plan(10, 0.40, severity="reduced")  # B, arrow down to G: n = 13
    assert (plan.letter_used, plan.sample_size, plan.accept, plan.reject) == ("G", 10, 0, 1)


@pytest.mark.parametrize(
    ("spelled", "canonical"), [(0.1, 0.10), (10, 10.0), (4, 4.0), (0.01, 0.010), (1e3, 1000)]
)
def test_aql_matches_its_column_regardless_of_spelling(spelled, canonical):
    assert z14_plan(1000, spelled) == z14_plan(1000, canonical)
    assert z14_plan(1000, spelled).aql == canonical


@pytest.mark.parametrize("aql", [0.3, 0.0, 2.0, 12, 1500, -1.0, math.nan])
def test_non_standard_aql_is_rejected_with_the_valid_list(aql):
    with pytest.raises(ValueError, match=r"valid AQLs: 0\.010, 0\.015, .*, 650, 1000$"):
        z14_plan(1000, aql)


@pytest.mark.parametrize("lot_size", [0, -1, -500])
def test_lot_size_below_one_is_rejected(lot_size):
    with pytest.raises(ValueError, match="lot size"):
        z14_plan(lot_size, 1.0)


@pytest.mark.parametrize("level", ["IV", "ii", "S-5", "", "G-2"])
def test_unknown_level_is_rejected(level):
    with pytest.raises(ValueError, match="inspection level"):
        z14_plan(1000, 1.0, level)


@pytest.mark.parametrize("severity", ["strict", "Normal", ""])
def test_unknown_severity_is_rejected(severity):
    with pytest.raises(ValueError, match="severity"):
        z14_plan(1000, 1.0, severity=severity)


def test_plan_is_immutable():
    plan = z14_plan(1000, 1.0)
    with pytest.raises(FrozenInstanceError):
        plan.accept = 5


# ------------------------------------------------------------------------------------------
# Switching rules
# ------------------------------------------------------------------------------------------


def run(state, results, **kwargs):
    for accepted in results:
        state = next_state(state, accepted, **kwargs)
    return state


def tightened_state():
    state = run(SwitchState(), [False, False])
    assert state.severity == "tightened"
    return state


def test_inspection_starts_on_normal():
    state = SwitchState()
    assert state.severity == "normal" and not state.stopped
    assert "8.1" in state.reason


def test_two_of_five_not_accepted_switches_to_tightened():
    state = run(SwitchState(), [False, True, True, True])
    assert state.severity == "normal" and state.recent_results == (False, True, True, True)
    state = next_state(state, False)
    assert state.severity == "tightened"
    assert "2 of the last 5 lots not accepted" in state.reason
    assert state.recent_results == () and state.consecutive_accepted == 0


def test_two_consecutive_not_accepted_switch_immediately():
    state = run(SwitchState(), [False, False])
    assert state.severity == "tightened"
    assert "2 of the last 2 lots not accepted" in state.reason


def test_two_not_accepted_six_lots_apart_do_not_switch():
    state = run(SwitchState(), [False, True, True, True, True, False])
    assert state.severity == "normal"
    assert state.recent_results == (True, True, True, True, False)


def test_five_consecutive_accepted_on_tightened_return_to_normal():
    state = run(tightened_state(), [True] * 4)
    assert state.severity == "tightened" and state.consecutive_accepted == 4
    state = next_state(state, True)
    assert state.severity == "normal"
    assert "5 consecutive lots accepted on tightened inspection" in state.reason
    assert state.switching_score == 0 and state.recent_results == ()


def test_a_lot_not_accepted_restarts_the_tightened_run():
    state = run(tightened_state(), [True, True, True, True, False, True, True, True, True])
    assert state.severity == "tightened" and state.consecutive_accepted == 4
    assert next_state(state, True).severity == "normal"


def test_five_lots_not_accepted_on_tightened_discontinue_inspection():
    state = run(tightened_state(), [False, True, False, True, False, True, False])
    assert state.not_accepted_on_tightened == 4 and not state.stopped
    state = next_state(state, False)
    assert state.stopped and state.severity == "tightened"
    assert "5 lots not accepted on tightened inspection" in state.reason
    with pytest.raises(InspectionDiscontinuedError, match="discontinued"):
        next_state(state, True)


def test_resuming_after_corrective_action_restarts_on_tightened():
    stopped = run(tightened_state(), [False] * 5)
    assert stopped.stopped
    resumed = resume_after_corrective_action(stopped)
    assert resumed.severity == "tightened" and not resumed.stopped
    assert resumed.not_accepted_on_tightened == 0 and "corrective action" in resumed.reason
    with pytest.raises(ValueError, match="not discontinued"):
        resume_after_corrective_action(resumed)


def test_not_accepted_count_restarts_after_leaving_tightened():
    state = run(tightened_state(), [False] * 4 + [True] * 5)  # 4 rejected, then back to normal
    assert state.severity == "normal"
    state = run(state, [False, False] + [False] * 4)  # tightened again, 4 more rejected
    assert state.severity == "tightened" and not state.stopped


# Lot of 1000 at AQL 2.5: letter J, n = 80, Ac 5; one AQL step tighter (1.5) Ac is 3.
J25 = {"sample_size": 80, "aql": 2.5}


def test_ten_lots_passing_the_tighter_aql_switch_to_reduced():
    state = SwitchState()
    for lot in range(1, 10):
        state = next_state(state, True, defects=3, **J25)
        assert (state.severity, state.switching_score) == ("normal", 3 * lot)
    state = next_state(state, True, defects=0, **J25)
    assert state.severity == "reduced"
    assert "switching score 30 after 10 consecutive accepted lots" in state.reason


def test_accepted_lot_failing_the_tighter_aql_resets_the_score():
    state = run(SwitchState(), [True] * 9, defects=1, **J25)
    state = next_state(state, True, defects=4, **J25)  # accepted (<= 5) but not at 1.5 (> 3)
    assert state.severity == "normal"
    assert state.switching_score == 0 and state.consecutive_accepted == 10


def test_acceptance_number_below_two_scores_two_per_accepted_lot():
    j065 = {"sample_size": 80, "aql": 0.65}  # letter J, Ac 1
    state = run(SwitchState(), [True] * 14, defects=1, **j065)
    assert (state.severity, state.switching_score) == ("normal", 28)
    assert next_state(state, True, defects=0, **j065).severity == "reduced"


def test_no_reduced_inspection_while_production_is_not_steady():
    state = run(SwitchState(), [True] * 10, defects=0, production_steady=False, **J25)
    assert state.severity == "normal" and state.switching_score == 30
    state = next_state(state, True, defects=0, **J25)
    assert state.severity == "reduced"


def test_without_aql_there_is_no_evidence_for_reduced_inspection():
    state = run(SwitchState(), [True] * 50)
    assert state.severity == "normal"
    assert state.switching_score == 0 and state.consecutive_accepted == 50


def test_not_accepted_lot_resets_the_score():
    state = run(SwitchState(), [True] * 5, defects=0, **J25)
    state = next_state(state, False, defects=6, **J25)
    assert state.switching_score == 0 and state.consecutive_accepted == 0


def test_full_inspection_lot_scores_with_the_plans_table_sample_size():
    plan = z14_plan(10, 0.65)  # B, arrow down to F (n = 20): the 10 units are all inspected
    assert plan.sample_size == 10 and plan.table_sample_size == 20
    state = next_state(SwitchState(), True, defects=0, sample_size=plan.table_sample_size, aql=0.65)
    assert state.switching_score == 2
    with pytest.raises(ValueError, match="table_sample_size"):
        next_state(SwitchState(), True, defects=0, sample_size=plan.sample_size, aql=0.65)


def test_sample_size_must_be_a_plan_of_table_ii_a():
    with pytest.raises(ValueError, match="no plan with sample size 50 at AQL 0.65"):
        next_state(SwitchState(), True, sample_size=50, aql=0.65)  # H/0.65 is an arrow


def test_inconsistent_defects_and_acceptance_are_rejected():
    with pytest.raises(ValueError, match="accepted"):
        next_state(SwitchState(), True, defects=6, **J25)
    with pytest.raises(ValueError, match="accepted"):
        next_state(SwitchState(), False, defects=5, **J25)


def test_negative_defects_are_rejected():
    with pytest.raises(ValueError, match="defects"):
        next_state(SwitchState(), True, defects=-1)


def reduced_state():
    state = run(SwitchState(), [True] * 10, defects=0, **J25)
    assert state.severity == "reduced"
    return state


def test_reduced_stays_reduced_while_lots_are_accepted():
    state = run(reduced_state(), [True] * 7)
    assert state.severity == "reduced" and state.consecutive_accepted == 7


@pytest.mark.parametrize(
    ("accepted", "kwargs", "reason"),
    [
        (False, {}, "lot not accepted on reduced inspection"),
        (True, {"result_between_ac_re": True}, "result between Ac and Re"),
        (True, {"production_steady": False}, "production irregular"),
    ],
)
def test_reduced_returns_to_normal(accepted, kwargs, reason):
    state = next_state(reduced_state(), accepted, **kwargs)
    assert state.severity == "normal" and reason in state.reason
    assert state.switching_score == 0 and state.consecutive_accepted == 0


@pytest.mark.parametrize("make_state", [SwitchState, tightened_state])
def test_between_ac_and_re_exists_only_on_reduced(make_state):
    with pytest.raises(ValueError, match="only on reduced"):
        next_state(make_state(), True, result_between_ac_re=True)


def test_between_ac_and_re_accepts_the_lot():
    with pytest.raises(ValueError, match="accepts the lot"):
        next_state(reduced_state(), False, result_between_ac_re=True)


def test_next_state_returns_a_new_state():
    state = SwitchState()
    after = next_state(state, False)
    assert after is not state and state == SwitchState()
    with pytest.raises(FrozenInstanceError):
        after.severity = "reduced"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=80), st.booleans())
def test_switching_invariants(results, steady):
    state = SwitchState()
    for accepted in results:
        try:
            state = next_state(state, accepted, production_steady=steady)
        except InspectionDiscontinuedError:
            assert state.stopped
            break
        assert state.severity in ("normal", "tightened")  # no aql, so never reduced
        assert len(state.recent_results) <= 5 and state.recent_results.count(False) <= 1
        assert state.switching_score == 0
        assert state.stopped == (state.not_accepted_on_tightened == 5)
        if state.severity == "tightened":
            assert state.consecutive_accepted < 5
        else:
            assert state.not_accepted_on_tightened == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=40))
def test_switching_score_matches_a_direct_count(defect_counts):
    """J at AQL 2.5 (Ac 5, tighter Ac 3): +3 per lot with <= 3 defects, reset otherwise."""
    state, expected = SwitchState(), 0
    for defects in defect_counts:
        state = next_state(state, defects <= 5, defects=defects, **J25)
        if state.severity != "normal":
            break
        expected = expected + 3 if defects <= 3 else 0
        assert state.switching_score == expected < SWITCH_TO_REDUCED_SCORE


# ------------------------------------------------------------------------------------------
# Fixed-rate sampling
# ------------------------------------------------------------------------------------------

STRATA = ("auto-claims", "property-claims", "life-underwriting", "fnol-intake", "")


@pytest.mark.parametrize("stratum", STRATA)
def test_sampled_fraction_is_within_half_a_point_of_the_rate(stratum):
    sampled = sum(fixed_rate_decision(task_id, 0.10, stratum) for task_id in range(1, 100_001))
    assert abs(sampled / 100_000 - 0.10) <= 0.005


def test_decisions_are_deterministic():
    first = [fixed_rate_decision(task_id, 0.25, "auto-claims") for task_id in range(2000)]
    second = [fixed_rate_decision(task_id, 0.25, "auto-claims") for task_id in range(2000)]
    assert first == second


def test_decisions_do_not_depend_on_the_process_hash_seed():
    code = (
        "from qa.sampling import fixed_rate_decision as d; "
        "print(''.join('1' if d(i, 0.3, 'property-claims', 's') else '0' for i in range(300)))"
    )
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outputs.add(result.stdout.strip())
    here = (fixed_rate_decision(i, 0.3, "property-claims", "s") for i in range(300))
    assert outputs == {"".join("1" if sampled else "0" for sampled in here)}


def test_known_selection_is_stable_across_releases():
    """Changing the hashing scheme would silently redraw every past sample: pin it."""
    ids = range(1, 201)
    chosen = [task_id for task_id in ids if fixed_rate_decision(task_id, 0.1, "auto-claims")]
    golden = [2, 6, 11, 18, 25, 50, 59, 66, 85, 104, 106, 110, 127, 130, 141, 142, 149, 178, 191]
    assert chosen == golden


def test_rate_one_samples_everything_and_rate_zero_nothing():
    ids = range(-50, 20_000)
    assert all(fixed_rate_decision(task_id, 1.0, "auto-claims") for task_id in ids)
    assert not any(fixed_rate_decision(task_id, 0.0, "auto-claims") for task_id in ids)
    assert all(fixed_rate_decision(task_id, 1, "x", salt="y") for task_id in ids)


def test_strata_and_salts_draw_independent_samples():
    ids = range(20_000)
    base = {i for i in ids if fixed_rate_decision(i, 0.5, "auto-claims")}
    other_stratum = {i for i in ids if fixed_rate_decision(i, 0.5, "property-claims")}
    other_salt = {i for i in ids if fixed_rate_decision(i, 0.5, "auto-claims", salt="2026-Q3")}
    for other in (other_stratum, other_salt):
        # Independent halves overlap on about a quarter of the ids.
        assert abs(len(base & other) / len(ids) - 0.25) < 0.02


def test_stratum_and_salt_do_not_run_together():
    """("ab", "c") and ("a", "bc") are different streams, not one concatenated string."""
    ids = range(2000)
    left = [fixed_rate_decision(i, 0.5, "c", salt="ab") for i in ids]
    right = [fixed_rate_decision(i, 0.5, "bc", salt="a") for i in ids]
    assert left != right


@pytest.mark.parametrize("rate", [-0.01, 1.01, 2, math.nan, math.inf])
def test_rate_outside_zero_one_is_rejected(rate):
    with pytest.raises(ValueError, match="rate"):
        fixed_rate_decision(1, rate, "auto-claims")


def test_task_id_must_be_an_integer():
    with pytest.raises(TypeError):
        fixed_rate_decision(1.5, 0.1, "auto-claims")


@settings(max_examples=300)
@given(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
    st.text(max_size=20),
)
def test_a_task_sampled_at_a_rate_is_sampled_at_every_higher_rate(task_id, r1, r2, stratum):
    low, high = sorted((r1, r2))
    if fixed_rate_decision(task_id, low, stratum):
        assert fixed_rate_decision(task_id, high, stratum)
