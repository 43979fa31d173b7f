"""Simulate the QA sampling decision and print the rate actually sampled per rule.

Runs the production decision code (qa.policy.decide, qa.sampling.z14_plan / next_state) on
a synthetic book of work - no database, so the figures are about the rules, not the
machine. Usage:

    .venv/bin/python benchmarks/sim_sampling.py [--tasks 100000] [--seed 7]

Population (see ``Book``): 4 clients (one on heightened review), 13 task types (5 KPO at
100 %, 8 BPO at 10 % with first_n 20 and 10 consecutive passes after a critical failure),
60 specialists with Zipf-like volumes (2 flagged by a lead), 2 % of tasks with an SLA
override, 1 % critical and 5 % minor error rate on reviewed work (failed files are
reworked and resubmitted). Then a lot-sampling run: 400 CSV lots of 50-500 files at AQL
1.0, level II, with a process that degrades for a while and recovers.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.policy import (  # noqa: E402
    EffectivePolicy,
    SamplingFacts,
    decide,
    risk_rules,
    stratified_decision,
)
from qa.sampling import (  # noqa: E402
    InspectionDiscontinuedError,
    SwitchState,
    fixed_rate_decision,
    next_state,
    resume_after_corrective_action,
    z14_plan,
)

KPO = EffectivePolicy(rate=1.0, first_n=20, consecutive_passes=10)
BPO = EffectivePolicy(rate=0.1, first_n=20, consecutive_passes=10)


@dataclass
class Book:
    """The running history the database would hold, per specialist and per stratum."""

    prior: Counter = field(default_factory=Counter)  # (specialist, type) -> submissions
    probation: dict = field(default_factory=dict)  # (specialist, type) -> passes since crit
    strata: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))


def simulate_decisions(n_tasks: int, seed: int) -> None:
    rng = random.Random(seed)
    clients = [(c, c == 3) for c in range(4)]  # client 3 is on heightened review
    client_weights = [4, 3, 2, 1]
    types = [(t, t < 5) for t in range(13)]  # 5 KPO types
    type_weights = [1 if kpo else 3 for _, kpo in types]
    specialists = list(range(60))
    volume = [1 / (s + 1) ** 0.8 for s in specialists]
    flagged = {7, 23}
    book = Book()
    first_rule: Counter = Counter()
    reviewed_by_rule: Counter = Counter()
    fired_any: Counter = Counter()
    task_id = 0
    pending_rework: list[tuple] = []
    decisions = 0

    def submit(client, heightened, ttype, kpo, spec, rework: int) -> bool:
        nonlocal decisions
        key = (spec, ttype)
        stratum = f"c{client}:t{ttype}:s{spec}"
        seen, sampled = book.strata[stratum]
        facts = SamplingFacts(
            task_id=task_id, stratum=stratum, kpo=kpo, rework_count=rework,
            heightened_client=heightened, flagged_specialist=spec in flagged,
            sla_overridden=rng.random() < 0.02, prior_of_type=book.prior[key],
            passes_since_critical=book.probation.get(key),
            stratum_seen=seen, stratum_sampled=sampled,
        )
        policy = KPO if kpo else BPO
        decision = decide(facts, policy)
        decisions += 1
        for rule in risk_rules(facts, policy):
            fired_any[rule] += 1
        first_rule[decision.rule] += 1
        reviewed_by_rule[decision.rule] += decision.review
        if decision.rule == "fixed_rate":
            book.strata[stratum] = [seen + 1, sampled + decision.review]
        if not rework:
            book.prior[key] += 1
        return decision.review

    for _ in range(n_tasks):
        task_id += 1
        client, heightened = rng.choices(clients, client_weights)[0]
        ttype, kpo = rng.choices(types, type_weights)[0]
        spec = rng.choices(specialists, volume)[0]
        if submit(client, heightened, ttype, kpo, spec, 0):
            _review(rng, book, (spec, ttype), pending_rework,
                    (client, heightened, ttype, kpo, spec))
        while pending_rework:  # failed files come back after rework
            args, rework = pending_rework.pop()
            if submit(*args, rework):
                _review(rng, book, (args[4], args[2]), pending_rework, args, rework)

    print(f"Fixed-rate and risk rules: {n_tasks:,} tasks, {decisions:,} sampling decisions "
          f"(reworked files decide again)\n")
    print(f"{'rule (first that fired)':28} {'decisions':>10} {'share':>7} {'reviewed':>9}")
    total_reviewed = 0
    for rule in ("rework", "full_review", "heightened_client", "flagged_specialist",
                 "sla_override", "first_n", "probation", "fixed_rate"):
        count = first_rule[rule]
        reviewed = reviewed_by_rule[rule]
        total_reviewed += reviewed
        rate = f"{reviewed / count:.2%}" if count else "-"
        print(f"{rule:28} {count:>10,} {count / decisions:>7.2%} {rate:>9}")
    print(f"{'all':28} {decisions:>10,} {1:>7.0%} {total_reviewed / decisions:>9.2%}")
    print("\nRisk rules firing at all (a task can trigger several):",
          ", ".join(f"{rule} {n:,}" for rule, n in fired_any.most_common()))
    _stratification_report(book)


def _review(rng, book: Book, key, pending, args, rework: int = 0) -> None:
    roll = rng.random()
    if roll < 0.01:
        book.probation[key] = 0
        pending.append((args, rework + 1))
    elif roll < 0.06:
        if key in book.probation:
            book.probation[key] = 0
        pending.append((args, rework + 1))
    elif key in book.probation:
        book.probation[key] += 1
        if book.probation[key] >= BPO.consecutive_passes:
            del book.probation[key]  # probation served: later minor fails do not restart it


def _stratification_report(book: Book) -> None:
    strata = [(seen, sampled) for seen, sampled in book.strata.values() if seen]
    rate = BPO.rate
    behind = min(sampled - rate * seen for seen, sampled in strata)
    ahead = max(sampled - rate * seen for seen, sampled in strata)
    eligible = [(seen, sampled) for seen, sampled in strata if seen >= 1 / rate]
    covered = sum(1 for _, sampled in eligible if sampled)
    total_seen = sum(seen for seen, _ in strata)
    total_sampled = sum(sampled for _, sampled in strata)
    print(f"\nStratified fixed rate (client x type x specialist): {len(strata)} strata, "
          f"{total_seen:,} decisions, sampled {total_sampled / total_seen:.2%} "
          f"(policy {rate:.0%})")
    print(f"  every stratum within [{behind:+.2f}, {ahead:+.2f}] samples of rate x tasks; "
          f"{covered}/{len(eligible)} strata with >= {1 / rate:.0f} tasks reviewed at least once")
    # The same strata with the bare hash (no deficit correction), for comparison.
    hash_zero = 0
    worst = 0.0
    for n, (seen, _) in enumerate(strata):
        hits = sum(fixed_rate_decision(i, rate, f"cmp{n}") for i in range(seen))
        worst = min(worst, hits - rate * seen)
        hash_zero += seen >= 1 / rate and hits == 0
    print(f"  bare hash on the same strata: {hash_zero}/{len(eligible)} such strata never "
          f"reviewed; worst stratum {worst:+.2f} samples behind")


def simulate_lots(n_lots: int, seed: int) -> None:
    rng = random.Random(seed + 1)
    state = SwitchState()
    by_severity: Counter = Counter()
    units = inspected = accepted = stops = 0
    moves: list[str] = []
    for lot_no in range(n_lots):
        # The process: 0.3 % defective, degrading to 4 % for lots 120-170, then recovering.
        p = 0.04 if 120 <= lot_no < 170 else 0.003
        size = rng.randint(50, 500)
        plan = z14_plan(size, 1.0, "II", state.severity)
        defects_in_lot = sum(rng.random() < p for _ in range(size))
        sample = rng.sample(range(size), plan.sample_size)
        found = sum(1 for unit in sample if unit < defects_in_lot)
        ok = found <= plan.accept if plan.accept + 1 == plan.reject else found < plan.reject
        between = state.severity == "reduced" and ok and found > plan.accept
        by_severity[state.severity] += 1
        units += size
        inspected += size if not ok else plan.sample_size
        accepted += ok
        before = state.severity
        try:
            state = next_state(
                state, ok, result_between_ac_re=between, defects=found,
                sample_size=plan.table_sample_size if state.severity == "normal" else 0,
                aql=1.0 if state.severity == "normal" else None,
            )
        except InspectionDiscontinuedError:
            state = resume_after_corrective_action(state)
        if state.stopped:
            stops += 1
            moves.append(f"lot {lot_no}: stopped (5 not accepted on tightened)")
            state = resume_after_corrective_action(state)
        elif state.severity != before:
            moves.append(f"lot {lot_no}: {before} -> {state.severity}")
    print(f"\nLot sampling: {n_lots} lots, {units:,} files, Z1.4 AQL 1.0 level II")
    print("  lots per severity: " + ", ".join(f"{s} {n}" for s, n in by_severity.items()))
    print(f"  accepted {accepted}/{n_lots}; files reviewed {inspected:,} = {inspected / units:.2%} "
          f"(samples, plus every file of a rejected lot); stops {stops}")
    print("  switches: " + "; ".join(moves))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--lots", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    simulate_decisions(args.tasks, args.seed)
    simulate_lots(args.lots, args.seed)
    # Reproducibility check: the same task, stratum and counters give the same answer.
    assert stratified_decision(42, 0.1, "c1:t1:s1", 3, 0) == stratified_decision(
        42, 0.1, "c1:t1:s1", 3, 0)


if __name__ == "__main__":
    main()
