"""The sampling decision: effective policy, the pure rules, stratified fixed rate."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from qa.policy import (
    STRATUM_TOLERANCE,
    EffectivePolicy,
    LotPolicy,
    PolicyError,
    SamplingFacts,
    decide,
    parse_policy,
    stratified_decision,
    tighten,
)
from qa.sampling import fixed_rate_decision


def test_parse_policy_reads_the_sop_shape():
    policy = parse_policy({"rate": 0.1, "first_n": 20, "consecutive_passes": 10,
                           "lot": {"aql": 1.0, "level": "II"}})
    assert policy == EffectivePolicy(0.1, 20, 10, False, LotPolicy(1.0, "II", False))
    assert parse_policy(None) == EffectivePolicy()


def test_parse_policy_names_every_bad_field():
    with pytest.raises(PolicyError) as caught:
        parse_policy({"rate": 1.5, "first_n": "many", "lot": {"aql": 1.1, "level": "IV"}})
    assert set(caught.value.errors) == {
        "sampling_policy.rate", "sampling_policy.first_n",
        "sampling_policy.lot.aql", "sampling_policy.lot.level",
    }


def test_a_contract_override_only_tightens():
    sop = parse_policy({"rate": 0.1, "first_n": 20, "consecutive_passes": 10,
                        "lot": {"aql": 1.0, "level": "II"}})
    looser = parse_policy({"rate": 0.05, "first_n": 5, "consecutive_passes": 2,
                           "lot": {"aql": 2.5, "level": "S-3"}}, "sampling_override")
    assert tighten(sop, looser) == sop
    stricter = parse_policy({"rate": 0.25, "full_review": True,
                             "lot": {"aql": 0.65, "level": "III"}})
    merged = tighten(sop, stricter)
    assert merged == EffectivePolicy(0.25, 20, 10, True, LotPolicy(0.65, "III", False))


def test_an_override_cannot_switch_fixed_rate_work_to_lots():
    assert tighten(parse_policy({"rate": 0.1}), parse_policy({"lot": {"aql": 1.0}})).lot is None


BASE = SamplingFacts(task_id=1, stratum="c1:t1:s1", prior_of_type=100)
RATE = EffectivePolicy(rate=0.1, first_n=20, consecutive_passes=10)


@pytest.mark.parametrize(("facts", "policy", "rule"), [
    (dict(rework_count=1, heightened_client=True), RATE, "rework"),
    (dict(kpo=True), EffectivePolicy(rate=1.0), "full_review"),
    (dict(), EffectivePolicy(rate=0.1, full_review=True), "full_review"),
    (dict(heightened_client=True), RATE, "heightened_client"),
    (dict(flagged_specialist=True), RATE, "flagged_specialist"),
    (dict(sla_overridden=True), RATE, "sla_override"),
    (dict(rule_required=True), RATE, "rule_required"),
    (dict(prior_of_type=19), RATE, "first_n"),
    (dict(passes_since_critical=9), RATE, "probation"),
    (dict(in_lot=True, lot_stopped=True, heightened_client=True),
     EffectivePolicy(lot=LotPolicy()), "lot_stopped"),
])
def test_each_rule_forces_review(facts, policy, rule):
    decision = decide(SamplingFacts(**{**BASE.__dict__, **facts}), policy)
    assert (decision.rule, decision.review, decision.held) == (rule, True, False)
    assert decision.reason


def test_rules_that_do_not_fire():
    assert decide(SamplingFacts(**{**BASE.__dict__, "prior_of_type": 20}), RATE).rule \
        == "fixed_rate"
    assert decide(SamplingFacts(**{**BASE.__dict__, "passes_since_critical": 10}), RATE).rule \
        == "fixed_rate"
    assert decide(BASE, EffectivePolicy(rate=0.1, first_n=0)).rule == "fixed_rate"


def test_every_firing_risk_rule_is_named_in_the_reason():
    facts = SamplingFacts(**{**BASE.__dict__, "heightened_client": True, "prior_of_type": 0})
    decision = decide(facts, RATE)
    assert decision.risk_rules == ("heightened_client", "first_n")
    assert "heightened review" in decision.reason and "first 20 tasks" in decision.reason


def test_kpo_full_review_says_so():
    decision = decide(SamplingFacts(**{**BASE.__dict__, "kpo": True}), EffectivePolicy(rate=1.0))
    assert decision.reason == "100 % review (KPO task type)"


def test_lot_work_waits_for_its_lot_unless_a_risk_rule_fires():
    lot = EffectivePolicy(rate=0.1, lot=LotPolicy(1.0, "II"))
    held = decide(SamplingFacts(**{**BASE.__dict__, "in_lot": True}), lot)
    assert (held.rule, held.review, held.held) == ("lot", False, True)
    risky = decide(SamplingFacts(**{**BASE.__dict__, "in_lot": True, "flagged_specialist": True}),
                   lot)
    assert (risky.rule, risky.review, risky.held) == ("flagged_specialist", True, False)
    daily = decide(BASE, EffectivePolicy(lot=LotPolicy(1.0, "II", daily=True)))
    assert (daily.rule, daily.held) == ("daily_lot", True)
    # Without "daily", a task outside a lot is sampled at the fixed rate.
    assert decide(BASE, lot).rule == "fixed_rate"


# --- fixed rate ---------------------------------------------------------------------------


def test_fixed_rate_is_reproducible_and_near_the_rate_over_100000_tasks():
    first = [fixed_rate_decision(i, 0.1, "c1:t1:s1") for i in range(1, 100_001)]
    again = [fixed_rate_decision(i, 0.1, "c1:t1:s1") for i in range(1, 100_001)]
    assert first == again
    # Binomial(100000, 0.1): sd = 0.095 pp; 0.4 pp is more than 4 sd.
    assert abs(sum(first) / len(first) - 0.1) < 0.004


def _simulate(rate: float, n: int, seed: int) -> tuple[dict, list[bool]]:
    """100,000 tasks over 600 strata of very different sizes (Zipf-like)."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 1.1 for i in range(600)]
    counters: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    decisions = []
    for task_id in range(1, n + 1):
        stratum = rng.choices(range(600), weights)[0]
        seen, sampled = counters[stratum]
        hit, _ = stratified_decision(task_id, rate, f"s{stratum}", seen, sampled)
        counters[stratum] = [seen + 1, sampled + hit]
        decisions.append(hit)
    return counters, decisions


@pytest.mark.parametrize("rate", [0.1, 0.03, 0.25])
def test_stratified_rate_over_100000_tasks_and_every_stratum_gets_its_share(rate):
    counters, decisions = _simulate(rate, 100_000, seed=11)
    assert abs(sum(decisions) / len(decisions) - rate) < 0.002
    for seen, sampled in counters.values():
        # Never a whole sample behind or ahead of rate x tasks, small strata included.
        assert rate * seen - STRATUM_TOLERANCE < sampled <= rate * seen + STRATUM_TOLERANCE
    assert all(sampled >= 1 for seen, sampled in counters.values() if seen >= 1 / rate)
    _, again = _simulate(rate, 100_000, seed=11)
    assert again == decisions


def test_a_small_stratum_is_not_left_out():
    """Ten tasks at 10 %: the hash alone misses a stratum 35 % of the time; never here."""
    never_sampled = 0
    for stratum in range(500):
        sampled = 0
        for seen in range(10):
            hit, _ = stratified_decision(stratum * 100 + seen, 0.1, f"tiny{stratum}", seen,
                                         sampled)
            sampled += hit
        never_sampled += sampled == 0
    assert never_sampled == 0


def test_the_correction_reports_why():
    assert stratified_decision(5, 0.1, "s", seen=9, sampled=0) == (True, "deficit")
    # One sample ahead already: a hash hit is skipped.
    hit_id = next(i for i in range(1, 1000) if fixed_rate_decision(i, 0.1, "s"))
    assert stratified_decision(hit_id, 0.1, "s", seen=1, sampled=1) == (False, "surplus")
    assert stratified_decision(hit_id, 0.1, "s", seen=5, sampled=0) == (True, "hash")
