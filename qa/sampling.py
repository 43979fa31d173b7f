"""Acceptance sampling for QA review: Z1.4 single sampling, its switching rules, fixed rates.

A batch of processed work items (claims, policy changes, ...) is a *lot*; a QA finding on an
item is a *nonconformity*. Two ways of choosing what QA reviews live here:

* **ANSI/ASQ Z1.4 (MIL-STD-105E) single sampling** (:func:`z14_plan`): the lot size and the
  inspection level give a sample size code letter (Table I); that letter and the AQL give a
  sample size with acceptance (Ac) and rejection (Re) numbers from Table II-A (normal), II-B
  (tightened) or II-C (reduced). Clients' quality agreements quote these plans, so the tables
  are transcribed cell by cell, arrows included, rather than re-derived by a formula: the
  printed tables have irregular corners (the reduced table's rows A-C all have n = 2, the
  tightened table's extra letter S, the 30/31 and 44/45 plans that exist only in rows A-E)
  that a formula would silently get wrong.
* **The switching rules** (MIL-STD-105E §8, :func:`next_state`): a pure state machine that
  moves a client's stream of lots between normal, tightened and reduced inspection, and stops
  acceptance sampling when quality stays bad.
* **Fixed-rate sampling** (:func:`fixed_rate_decision`): "review 10 % of every adjuster's
  work" - decided by a keyed hash of the task id, so that a re-run, a second worker or an
  auditor reproduces exactly the same selection.

Pure Python on purpose (no Flask or database imports): the QA views, the background jobs and
the audit scripts all call the same code.
"""

from __future__ import annotations

import hashlib
import math
import operator
from dataclasses import dataclass, replace
from typing import Final

__all__ = [
    "AQL_VALUES",
    "INSPECTION_LEVELS",
    "SEVERITIES",
    "DOWN",
    "UP",
    "Entry",
    "Plan",
    "z14_plan",
    "master_table_entry",
    "SwitchState",
    "InspectionDiscontinuedError",
    "next_state",
    "resume_after_corrective_action",
    "SWITCH_TO_REDUCED_SCORE",
    "fixed_rate_decision",
]

# --------------------------------------------------------------------------------------------
# ANSI/ASQ Z1.4 / MIL-STD-105E single sampling (Tables I, II-A, II-B, II-C)
# --------------------------------------------------------------------------------------------

#: AQL column heads of Tables II-A/B/C, exactly as printed (percent nonconforming up to 10,
#: nonconformities per hundred units above).
_AQL_LABELS: Final = (
    "0.010", "0.015", "0.025", "0.040", "0.065", "0.10", "0.15", "0.25", "0.40", "0.65",
    "1.0", "1.5", "2.5", "4.0", "6.5", "10", "15", "25", "40", "65",
    "100", "150", "250", "400", "650", "1000",
)  # fmt: skip
AQL_VALUES: Final[tuple[float, ...]] = tuple(float(label) for label in _AQL_LABELS)

INSPECTION_LEVELS: Final = ("S-1", "S-2", "S-3", "S-4", "I", "II", "III")
SEVERITIES: Final = ("normal", "tightened", "reduced")

#: Table II markers: "use the first sampling plan below / above the arrow".
DOWN: Final = "↓"
UP: Final = "↑"
#: A cell the standard leaves empty (only in the tightened table's extra row S).
_BLANK: Final = "·"

# Table I - Sample size code letters. "over" means "and over".
_TABLE_I: Final = """
from     to       S-1  S-2  S-3  S-4  I    II   III
2        8        A    A    A    A    A    A    B
9        15       A    A    A    A    A    B    C
16       25       A    A    B    B    B    C    D
26       50       A    B    B    C    C    D    E
51       90       B    B    C    C    C    E    F
91       150      B    B    C    D    D    F    G
151      280      B    C    D    E    E    G    H
281      500      B    C    D    E    F    H    J
501      1200     C    C    E    F    G    J    K
1201     3200     C    D    E    G    H    K    L
3201     10000    C    D    F    G    J    L    M
10001    35000    C    D    F    H    K    M    N
35001    150000   D    E    G    J    L    N    P
150001   500000   D    E    G    J    M    P    Q
500001   over     D    E    H    K    N    Q    R
"""

# Tables II-A/B/C, one line per code letter: the letter, its sample size n, then one entry
# per AQL column - "Ac/Re", an arrow, or the blank marker. Each table is printed in two
# halves (AQL 0.010-2.5, then 4.0-1000) to stay readable at this line length.
#
# Cells where the printed tables cannot be followed literally, and how they are read here:
# * A/10 in II-A and II-C: printed reproductions show an up arrow, but nothing is above row A.
#   It is read as a down arrow - the tightened table prints a down arrow in that cell, and
#   Lawson's AQLSchemes (R) resolves it the same way (to the 1/2 plan of letter C).
# * R/0.015 in all three tables: the diagonal would put a down arrow there, which has nothing
#   below it; the cell is an up arrow (to the 0/1 plan of letter P, Q in II-B).
# * Letter S (n = 3150) exists only in II-B and carries a single plan, 1/2 at AQL 0.025,
#   reached from the down arrows of Q and R in that column.

_TABLE_II_A: Final = """
     n  0.010 0.015 0.025 0.040 0.065 0.10  0.15  0.25  0.40  0.65  1.0   1.5   2.5
A    2  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓
B    3  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓
C    5  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1
D    8  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑
E   13  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓
F   20  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     1/2
G   32  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     1/2   2/3
H   50  ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     1/2   2/3   3/4
J   80  ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     1/2   2/3   3/4   5/6
K  125  ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     1/2   2/3   3/4   5/6   7/8
L  200  ↓     ↓     ↓     ↓     0/1   ↑     ↓     1/2   2/3   3/4   5/6   7/8   10/11
M  315  ↓     ↓     ↓     0/1   ↑     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15
N  500  ↓     ↓     0/1   ↑     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22
P  800  ↓     0/1   ↑     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 ↑
Q 1250  0/1   ↑     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 ↑     ↑
R 2000  ↑     ↑     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 ↑     ↑     ↑
     n  4.0   6.5   10    15    25    40    65    100   150   250   400   650   1000
A    2  ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 30/31
B    3  0/1   ↑     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 30/31 44/45
C    5  ↑     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 30/31 44/45 ↑
D    8  ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 30/31 44/45 ↑     ↑
E   13  1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 30/31 44/45 ↑     ↑     ↑
F   20  2/3   3/4   5/6   7/8   10/11 14/15 21/22 ↑     ↑     ↑     ↑     ↑     ↑
G   32  3/4   5/6   7/8   10/11 14/15 21/22 ↑     ↑     ↑     ↑     ↑     ↑     ↑
H   50  5/6   7/8   10/11 14/15 21/22 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
J   80  7/8   10/11 14/15 21/22 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
K  125  10/11 14/15 21/22 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
L  200  14/15 21/22 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
M  315  21/22 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
N  500  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
P  800  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
Q 1250  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
R 2000  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
"""

_TABLE_II_B: Final = """
     n  0.010 0.015 0.025 0.040 0.065 0.10  0.15  0.25  0.40  0.65  1.0   1.5   2.5
A    2  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓
B    3  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓
C    5  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓
D    8  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1
E   13  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↓
F   20  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↓     ↓
G   32  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↓     ↓     1/2
H   50  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↓     ↓     1/2   2/3
J   80  ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↓     ↓     1/2   2/3   3/4
K  125  ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6
L  200  ↓     ↓     ↓     ↓     ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   8/9
M  315  ↓     ↓     ↓     ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13
N  500  ↓     ↓     ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19
P  800  ↓     ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 ↑
Q 1250  ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 ↑     ↑
R 2000  0/1   ↑     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 ↑     ↑     ↑
S 3150  ·     ·     1/2   ·     ·     ·     ·     ·     ·     ·     ·     ·     ·
     n  4.0   6.5   10    15    25    40    65    100   150   250   400   650   1000
A    2  ↓     ↓     ↓     ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 27/28
B    3  ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 27/28 41/42
C    5  0/1   ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 27/28 41/42 ↑
D    8  ↓     ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 27/28 41/42 ↑     ↑
E   13  ↓     1/2   2/3   3/4   5/6   8/9   12/13 18/19 27/28 41/42 ↑     ↑     ↑
F   20  1/2   2/3   3/4   5/6   8/9   12/13 18/19 ↑     ↑     ↑     ↑     ↑     ↑
G   32  2/3   3/4   5/6   8/9   12/13 18/19 ↑     ↑     ↑     ↑     ↑     ↑     ↑
H   50  3/4   5/6   8/9   12/13 18/19 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
J   80  5/6   8/9   12/13 18/19 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
K  125  8/9   12/13 18/19 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
L  200  12/13 18/19 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
M  315  18/19 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
N  500  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
P  800  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
Q 1250  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
R 2000  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
S 3150  ·     ·     ·     ·     ·     ·     ·     ·     ·     ·     ·     ·     ·
"""

# Reduced plans leave a gap between Ac and Re (e.g. 1/3, 5/8): a result inside the gap accepts
# the lot but sends the stream back to normal inspection (MIL-STD-105E §10.1.4, §8.3.4 b).
_TABLE_II_C: Final = """
     n  0.010 0.015 0.025 0.040 0.065 0.10  0.15  0.25  0.40  0.65  1.0   1.5   2.5
A    2  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓
B    2  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓
C    2  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1
D    3  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑
E    5  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓
F    8  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     0/2
G   13  ↓     ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     0/2   1/3
H   20  ↓     ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     0/2   1/3   1/4
J   32  ↓     ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     0/2   1/3   1/4   2/5
K   50  ↓     ↓     ↓     ↓     ↓     0/1   ↑     ↓     0/2   1/3   1/4   2/5   3/6
L   80  ↓     ↓     ↓     ↓     0/1   ↑     ↓     0/2   1/3   1/4   2/5   3/6   5/8
M  125  ↓     ↓     ↓     0/1   ↑     ↓     0/2   1/3   1/4   2/5   3/6   5/8   7/10
N  200  ↓     ↓     0/1   ↑     ↓     0/2   1/3   1/4   2/5   3/6   5/8   7/10  10/13
P  315  ↓     0/1   ↑     ↓     0/2   1/3   1/4   2/5   3/6   5/8   7/10  10/13 ↑
Q  500  0/1   ↑     ↓     0/2   1/3   1/4   2/5   3/6   5/8   7/10  10/13 ↑     ↑
R  800  ↑     ↑     0/2   1/3   1/4   2/5   3/6   5/8   7/10  10/13 ↑     ↑     ↑
     n  4.0   6.5   10    15    25    40    65    100   150   250   400   650   1000
A    2  ↓     0/1   ↓     ↓     1/2   2/3   3/4   5/6   7/8   10/11 14/15 21/22 30/31
B    2  0/1   ↑     ↓     0/2   1/3   2/4   3/5   ↑     ↑     ↑     ↑     ↑     ↑
C    2  ↑     ↓     0/2   1/3   1/4   2/5   3/6   5/8   7/10  10/13 14/17 21/24 ↑
D    3  ↓     0/2   1/3   1/4   2/5   3/6   5/8   7/10  10/13 14/17 21/24 ↑     ↑
E    5  0/2   1/3   1/4   2/5   3/6   5/8   7/10  10/13 14/17 21/24 ↑     ↑     ↑
F    8  1/3   1/4   2/5   3/6   5/8   7/10  10/13 ↑     ↑     ↑     ↑     ↑     ↑
G   13  1/4   2/5   3/6   5/8   7/10  10/13 ↑     ↑     ↑     ↑     ↑     ↑     ↑
H   20  2/5   3/6   5/8   7/10  10/13 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
J   32  3/6   5/8   7/10  10/13 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
K   50  5/8   7/10  10/13 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
L   80  7/10  10/13 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
M  125  10/13 ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
N  200  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
P  315  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
Q  500  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
R  800  ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑     ↑
"""

#: A Table II entry: an (Ac, Re) plan, an arrow (DOWN / UP), or None for a blank cell.
Entry = tuple[int, int] | str | None


@dataclass(frozen=True)
class _MasterTable:
    """One of Tables II-A/B/C: code letters top to bottom, their n, and entries per AQL."""

    name: str
    letters: tuple[str, ...]
    sample_sizes: dict[str, int]
    entries: dict[str, tuple[Entry, ...]]


def _parse_entry(token: str) -> Entry:
    if token in (DOWN, UP):
        return token
    if token == _BLANK:
        return None
    accept, reject = token.split("/")
    return int(accept), int(reject)


def _parse_master_table(name: str, text: str) -> _MasterTable:
    """Read a table written as above; the column heads of each half must be the AQL labels."""
    sample_sizes: dict[str, int] = {}
    by_label: dict[str, dict[str, Entry]] = {}
    heads: list[str] = []
    for line in text.strip().splitlines():
        first, *rest = line.split()
        if first == "n":
            heads = rest
            continue
        letter, size, tokens = first, int(rest[0]), rest[1:]
        if sample_sizes.setdefault(letter, size) != size:
            raise ValueError(f"Table {name}: the two halves disagree on n for letter {letter}")
        row = by_label.setdefault(letter, {})
        for label, token in zip(heads, tokens, strict=True):
            row[label] = _parse_entry(token)
    entries = {
        letter: tuple(row[label] for label in _AQL_LABELS) for letter, row in by_label.items()
    }
    return _MasterTable(name, tuple(by_label), sample_sizes, entries)


def _parse_table_i(text: str) -> tuple[tuple[int, float, dict[str, str]], ...]:
    lines = text.strip().splitlines()
    levels = lines[0].split()[2:]
    rows = []
    for line in lines[1:]:
        low, high, *letters = line.split()
        upper = math.inf if high == "over" else int(high)
        rows.append((int(low), upper, dict(zip(levels, letters, strict=True))))
    return tuple(rows)


_CODE_LETTERS: Final = _parse_table_i(_TABLE_I)
_MASTER_TABLES: Final = {
    "normal": _parse_master_table("II-A", _TABLE_II_A),
    "tightened": _parse_master_table("II-B", _TABLE_II_B),
    "reduced": _parse_master_table("II-C", _TABLE_II_C),
}


@dataclass(frozen=True)
class Plan:
    """A single sampling plan for one lot.

    ``code_letter`` is Table I's letter; ``letter_used`` the letter whose row the Table II
    arrows led to - MIL-STD-105E §9.4: "the sample size to be used is given by the new code
    letter, not by the original letter". ``table_sample_size`` is that row's n;
    ``sample_size`` is what to inspect: n, or the whole lot when n is at least the lot size
    (Table II footnote: "if sample size equals, or exceeds, lot or batch size, do 100 percent
    inspection"). Ac/Re stay those of the plan either way.
    """

    code_letter: str
    sample_size: int
    accept: int
    reject: int
    letter_used: str
    table_sample_size: int
    lot_size: int
    aql: float
    level: str
    severity: str

    @property
    def full_inspection(self) -> bool:
        """Whether every unit of the lot is inspected."""
        return self.table_sample_size >= self.lot_size


def _aql_column(aql: float) -> int:
    for column, value in enumerate(AQL_VALUES):
        if math.isclose(aql, value, rel_tol=1e-9):
            return column
    raise ValueError(
        f"AQL {aql!r} is not a column of Z1.4 Tables II-A/B/C; valid AQLs: "
        + ", ".join(_AQL_LABELS)
    )


def _master_table(severity: str) -> _MasterTable:
    try:
        return _MASTER_TABLES[severity]
    except KeyError:
        raise ValueError(
            f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}"
        ) from None


def _code_letter(lot_size: int, level: str) -> str:
    """Table I. A lot of one unit is read with the 2-8 row; any plan then inspects it whole."""
    if level not in INSPECTION_LEVELS:
        raise ValueError(
            f"unknown inspection level {level!r}; expected one of {', '.join(INSPECTION_LEVELS)}"
        )
    return next(letters[level] for _, upper, letters in _CODE_LETTERS if lot_size <= upper)


def _follow_arrows(table: _MasterTable, letter: str, column: int) -> tuple[str, int, int]:
    """Walk from (letter, column) past the arrow(s) to the first plan they point at.

    Table II footnotes: ↓ "use first sampling plan below arrow", ↑ "use first sampling plan
    above arrow". An arrow cell is followed by more of the same arrow until a plan is reached.
    """
    row = table.letters.index(letter)
    arrow = entry = table.entries[letter][column]
    step = 1 if arrow == DOWN else -1 if arrow == UP else 0
    while step and entry == arrow:
        row += step
        in_table = 0 <= row < len(table.letters)
        entry = table.entries[table.letters[row]][column] if in_table else None
    if not isinstance(entry, tuple):
        raise LookupError(
            f"Table {table.name}: the entry for letter {letter} at AQL {_AQL_LABELS[column]} "
            "does not lead to a sampling plan"
        )
    return table.letters[row], entry[0], entry[1]


def z14_plan(lot_size: int, aql: float, level: str = "II", severity: str = "normal") -> Plan:
    """The ANSI/ASQ Z1.4 (MIL-STD-105E) single sampling plan for a lot.

    ``level`` is a Table I inspection level ("S-1".."S-4", "I", "II", "III"); ``severity``
    picks Table II-A ("normal"), II-B ("tightened") or II-C ("reduced"); ``aql`` must be one of
    :data:`AQL_VALUES`. Raises ValueError for anything else or for ``lot_size < 1``.
    """
    lot_size = operator.index(lot_size)
    if lot_size < 1:
        raise ValueError(f"lot size must be at least 1, got {lot_size}")
    column = _aql_column(aql)
    table = _master_table(severity)
    code_letter = _code_letter(lot_size, level)
    letter_used, accept, reject = _follow_arrows(table, code_letter, column)
    table_sample_size = table.sample_sizes[letter_used]
    return Plan(
        code_letter=code_letter,
        sample_size=min(table_sample_size, lot_size),
        accept=accept,
        reject=reject,
        letter_used=letter_used,
        table_sample_size=table_sample_size,
        lot_size=lot_size,
        aql=AQL_VALUES[column],
        level=level,
        severity=severity,
    )


def master_table_entry(letter: str, aql: float, severity: str = "normal") -> Entry:
    """The raw Table II-A/B/C entry, arrows unresolved: (Ac, Re), DOWN, UP or None (blank).

    For showing reviewers and auditors the table cell a plan came from.
    """
    table = _master_table(severity)
    if letter not in table.entries:
        raise ValueError(f"Table {table.name} has no code letter {letter!r}")
    return table.entries[letter][_aql_column(aql)]


# --------------------------------------------------------------------------------------------
# Switching rules - MIL-STD-105E §8.3, §8.4; switching score of ANSI/ASQ Z1.4-2008 §8.3.3
# --------------------------------------------------------------------------------------------

#: Normal -> reduced needs a switching score of at least this (Z1.4-2008 §8.3.3).
SWITCH_TO_REDUCED_SCORE: Final = 30
_WINDOW: Final = 5
_TIGHTENED_TO_NORMAL_RUN: Final = 5
_DISCONTINUE_AFTER: Final = 5

_NORMAL_LETTER_BY_SAMPLE_SIZE: Final = {
    size: letter for letter, size in _MASTER_TABLES["normal"].sample_sizes.items()
}


class InspectionDiscontinuedError(RuntimeError):
    """Raised when a lot is recorded against a stream whose inspection is discontinued."""


@dataclass(frozen=True)
class SwitchState:
    """Where a stream of lots stands in the Z1.4 switching scheme.

    * ``consecutive_accepted`` - lots accepted in a row under the current severity.
    * ``recent_results`` - acceptance of the last (up to) five lots on normal inspection,
      oldest first, for the "2 of 5 or fewer" rule of §8.3.1.
    * ``not_accepted_on_tightened`` - lots not accepted since tightened inspection began (§8.4).
    * ``switching_score`` - the running score towards reduced inspection (see
      :func:`next_state`).
    * ``stopped`` - acceptance inspection is discontinued (§8.4); ``reason`` says why the
      stream is where it is.
    """

    severity: str = "normal"
    consecutive_accepted: int = 0
    recent_results: tuple[bool, ...] = ()
    not_accepted_on_tightened: int = 0
    switching_score: int = 0
    stopped: bool = False
    reason: str = "inspection starts on normal (MIL-STD-105E §8.1)"


def next_state(
    state: SwitchState,
    accepted: bool,
    *,
    result_between_ac_re: bool = False,
    production_steady: bool = True,
    defects: int = 0,
    sample_size: int = 0,
    aql: float | None = None,
) -> SwitchState:
    """The state after one more lot on original (not resubmitted) inspection.

    * normal -> tightened when 2 of 5 or fewer consecutive lots are not accepted (§8.3.1);
    * tightened -> normal after 5 consecutive accepted lots (§8.3.2);
    * tightened -> stopped once 5 lots have not been accepted on tightened inspection (§8.4);
      recording another lot then raises :class:`InspectionDiscontinuedError`;
    * reduced -> normal when a lot is not accepted, when it is accepted with a result between
      Ac and Re (``result_between_ac_re``; only Table II-C has such results), or when
      production is not steady (§8.3.4 a-c);
    * normal -> reduced when the switching score reaches :data:`SWITCH_TO_REDUCED_SCORE` and
      production is steady (§8.3.3).

    The limit-number test of MIL-STD-105E §8.3.3 b (Table VIII) is replaced by the switching
    score of ANSI/ASQ Z1.4-2008 §8.3.3 (ISO 2859-1:1999 §9.3.3.2): Table VIII's cells could
    not be transcribed with certainty, the score needs only each lot's own plan, and Z1.4-2008
    is the edition clients quote. On each lot on normal inspection: if the plan's Ac is 2 or
    more, add 3 when the lot would have been accepted at the next tighter AQL (the Ac one
    column to the left in the same Table II-A row), else reset to 0; if Ac is 0 or 1, add 2
    when the lot is accepted, else reset to 0. Any lot not accepted resets the score, so
    reaching 30 takes at least 10 consecutive accepted lots (15 with Ac <= 1 plans). The
    score needs ``defects``, ``aql`` and ``sample_size`` - the plan's Table II-A sample size
    (:attr:`Plan.table_sample_size`, which differs from the inspected count only under 100 %
    inspection); a lot recorded without ``aql`` gives no evidence and resets the score.
    """
    if state.stopped:
        raise InspectionDiscontinuedError(
            f"inspection of this stream is discontinued ({state.reason}); call "
            "resume_after_corrective_action() once corrective action has been taken"
        )
    if defects < 0:
        raise ValueError(f"defects must be >= 0, got {defects}")
    if result_between_ac_re and (state.severity != "reduced" or not accepted):
        raise ValueError(
            "a result between Ac and Re exists only on reduced inspection, and accepts the lot"
        )
    if state.severity == "normal":
        return _after_normal_lot(state, accepted, production_steady, defects, sample_size, aql)
    if state.severity == "tightened":
        return _after_tightened_lot(state, accepted)
    return _after_reduced_lot(state, accepted, result_between_ac_re, production_steady)


def resume_after_corrective_action(state: SwitchState) -> SwitchState:
    """Restart a discontinued stream: §8.4 resumes on tightened inspection."""
    if not state.stopped:
        raise ValueError("inspection of this stream is not discontinued")
    return SwitchState(
        severity="tightened",
        reason="resumed on tightened inspection after corrective action (§8.4)",
    )


def _after_normal_lot(
    state: SwitchState,
    accepted: bool,
    production_steady: bool,
    defects: int,
    sample_size: int,
    aql: float | None,
) -> SwitchState:
    recent = (*state.recent_results, accepted)[-_WINDOW:]
    not_accepted = recent.count(False)
    if not_accepted >= 2:
        return SwitchState(
            severity="tightened",
            reason=f"{not_accepted} of the last {len(recent)} lots not accepted on normal "
            "inspection (§8.3.1)",
        )
    score = _switching_score(state.switching_score, accepted, defects, sample_size, aql)
    streak = state.consecutive_accepted + 1 if accepted else 0
    if score >= SWITCH_TO_REDUCED_SCORE and production_steady:
        return SwitchState(
            severity="reduced",
            reason=f"switching score {score} after {streak} consecutive accepted lots, "
            "production steady (Z1.4-2008 §8.3.3)",
        )
    return replace(state, consecutive_accepted=streak, recent_results=recent, switching_score=score)


def _switching_score(
    score: int, accepted: bool, defects: int, sample_size: int, aql: float | None
) -> int:
    if aql is None:
        return 0
    column = _aql_column(aql)
    letter = _NORMAL_LETTER_BY_SAMPLE_SIZE.get(sample_size, "")
    accept = _normal_accept_number(letter, column)
    if accept is None:
        raise ValueError(
            f"Table II-A has no plan with sample size {sample_size} at AQL {aql}; pass the "
            "plan's table_sample_size"
        )
    if accepted != (defects <= accept):
        raise ValueError(
            f"{defects} defects with Ac {accept} means the lot was "
            f"{'accepted' if defects <= accept else 'not accepted'}"
        )
    if not accepted:
        return 0
    if accept < 2:
        return score + 2
    # For Ac >= 2 the entry one column to the left is always a plan (the diagonal steps down).
    tighter_accept = _normal_accept_number(letter, column - 1)
    return score + 3 if tighter_accept is not None and defects <= tighter_accept else 0


def _normal_accept_number(letter: str, column: int) -> int | None:
    """Ac of the Table II-A plan at (letter, column), or None where there is no plan."""
    entries = _MASTER_TABLES["normal"].entries.get(letter)
    entry = entries[column] if entries else None
    return entry[0] if isinstance(entry, tuple) else None


def _after_tightened_lot(state: SwitchState, accepted: bool) -> SwitchState:
    if accepted:
        streak = state.consecutive_accepted + 1
        if streak == _TIGHTENED_TO_NORMAL_RUN:
            return SwitchState(
                reason=f"{streak} consecutive lots accepted on tightened inspection (§8.3.2)"
            )
        return replace(state, consecutive_accepted=streak)
    not_accepted = state.not_accepted_on_tightened + 1
    if not_accepted == _DISCONTINUE_AFTER:
        return replace(
            state,
            consecutive_accepted=0,
            not_accepted_on_tightened=not_accepted,
            stopped=True,
            reason=f"{not_accepted} lots not accepted on tightened inspection: acceptance "
            "inspection discontinued until corrective action (§8.4)",
        )
    return replace(state, consecutive_accepted=0, not_accepted_on_tightened=not_accepted)


def _after_reduced_lot(
    state: SwitchState, accepted: bool, result_between_ac_re: bool, production_steady: bool
) -> SwitchState:
    if not accepted:
        reason = "lot not accepted on reduced inspection (§8.3.4 a)"
    elif result_between_ac_re:
        reason = (
            "result between Ac and Re on reduced inspection: lot accepted, normal "
            "inspection reinstated (§8.3.4 b, §10.1.4)"
        )
    elif not production_steady:
        reason = "production irregular or delayed (§8.3.4 c)"
    else:
        return replace(state, consecutive_accepted=state.consecutive_accepted + 1)
    return SwitchState(reason=reason)


# --------------------------------------------------------------------------------------------
# Fixed-rate reproducible sampling
# --------------------------------------------------------------------------------------------

_HASH_SPACE: Final = 2**64


def fixed_rate_decision(task_id: int, rate: float, stratum: str, salt: str = "") -> bool:
    """Whether task ``task_id`` of ``stratum`` is sampled at ``rate`` (0 to 1).

    The decision is a BLAKE2b hash of (salt, stratum, task id) read as a number in
    [0, 2**64) and compared with ``rate * 2**64``. Python's ``random`` and ``hash()`` are not
    used because their values change with the seed or the process (PYTHONHASHSEED); the hash
    gives the same answer on every machine and every re-run, so a sample can be audited and a
    crashed job re-run without drawing a different sample. Hashing the stratum in makes each
    stratum's selection independent; a new ``salt`` draws a fresh, equally reproducible sample.
    A task sampled at some rate is also sampled at every higher rate, and rate 1 samples every
    task, rate 0 none.
    """
    task_id = operator.index(task_id)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be between 0 and 1, got {rate!r}")
    parts = (salt, stratum, str(task_id))
    # Length-prefix each part so that no two different (salt, stratum, id) share a message.
    message = b"".join(
        len(encoded).to_bytes(4, "big") + encoded for encoded in (p.encode() for p in parts)
    )
    digest = hashlib.blake2b(message, digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * _HASH_SPACE
