"""Service credits: what a missed contract target costs the provider, with the sum shown.

Pure functions over plain numbers so every figure can be checked by hand. Two schemes,
chosen by ``Contract.credit_scheme["kind"]``:

* ``pool``: credit for a missed level = pool allocation % x the level's allocation % x
  at-risk amount, where at-risk amount = at-risk % x monthly invoice; summed over the
  missed levels and capped at the at-risk amount. With ``earn_back`` a level's credit is
  waived when the next period beats that level's target.
  ``{"kind": "pool", "at_risk_pct": 12, "pool_allocation_pct": 200,
     "levels": {"attainment": 60, "qa_accuracy": 40}, "earn_back": true}``
* ``per_point``: ``pct_per_point`` % of the monthly fee per percentage point below each
  target, capped at ``cap_pct`` % of the fee.
  ``{"kind": "per_point", "pct_per_point": 1.0, "cap_pct": 10.0}``

Levels are ``attainment`` (SLA attainment % against ``Contract.attainment_target``) and
``qa_accuracy`` (QA accuracy % against ``Contract.qa_accuracy_target``). A level without an
actual figure (nothing decided or reviewed) is not missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

LEVELS = ("attainment", "qa_accuracy")
_CENT = Decimal("0.01")


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _dec(value: float | int | str | Decimal) -> Decimal:
    return Decimal(str(value))


@dataclass(frozen=True)
class CreditLine:
    level: str
    target: float
    actual: float | None
    missed: bool
    amount: Decimal
    calculation: str
    earned_back: bool = False


@dataclass
class CreditResult:
    kind: str
    currency: str
    monthly_fee: Decimal
    lines: list[CreditLine] = field(default_factory=list)
    cap: Decimal = Decimal("0")
    total: Decimal = Decimal("0")
    capped: bool = False
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "scheme": self.kind, "currency": self.currency,
            "monthly_fee": str(self.monthly_fee), "cap": str(self.cap),
            "total": str(self.total), "capped": self.capped, "note": self.note,
            "lines": [
                {"level": x.level, "target": x.target, "actual": x.actual, "missed": x.missed,
                 "amount": str(x.amount), "calculation": x.calculation,
                 "earned_back": x.earned_back}
                for x in self.lines
            ],
        }


def _missed(actual: float | None, target: float) -> bool:
    return actual is not None and actual < target


def pool_credit(scheme: dict, fee: Decimal, targets: dict, actuals: dict,
                next_actuals: dict | None = None, currency: str = "USD") -> CreditResult:
    """The pool scheme (see the module docstring); ``next_actuals`` drives earn-back."""
    at_risk_pct = _dec(scheme.get("at_risk_pct", 0))
    pool_pct = _dec(scheme.get("pool_allocation_pct", 100))
    at_risk = _money(fee * at_risk_pct / 100)
    result = CreditResult("pool", currency, fee, cap=at_risk)
    for level, allocation in (scheme.get("levels") or {}).items():
        if level not in targets:
            continue
        target, actual = targets[level], actuals.get(level)
        missed = _missed(actual, target)
        amount = Decimal("0")
        calc = f"{actual}% ≥ target {target}%: no credit"
        earned_back = False
        if missed:
            amount = _money(pool_pct / 100 * _dec(allocation) / 100 * at_risk)
            calc = (f"{actual}% < target {target}%: {pool_pct}% pool × {_dec(allocation)}% "
                    f"allocation × {at_risk} at risk ({at_risk_pct}% × {fee}) = {amount}")
            nxt = (next_actuals or {}).get(level)
            if scheme.get("earn_back") and nxt is not None and nxt > target:
                earned_back = True
                calc += f"; earned back (next period {nxt}% > {target}%)"
                amount = Decimal("0")
        elif actual is None:
            calc = "no figure for the period: no credit"
        result.lines.append(CreditLine(level, target, actual, missed, amount, calc, earned_back))
    gross = sum((line.amount for line in result.lines), Decimal("0"))
    result.capped = gross > at_risk
    result.total = min(gross, at_risk)
    result.note = (f"sum {gross} capped at the at-risk amount {at_risk}" if result.capped
                   else f"sum {gross} (cap {at_risk})")
    return result


def per_point_credit(scheme: dict, fee: Decimal, targets: dict, actuals: dict,
                     currency: str = "USD") -> CreditResult:
    """``pct_per_point`` % of the fee per point below each target, capped at ``cap_pct`` %."""
    per_point = _dec(scheme.get("pct_per_point", 1))
    cap_pct = _dec(scheme.get("cap_pct", 100))
    cap = _money(fee * cap_pct / 100)
    result = CreditResult("per_point", currency, fee, cap=cap)
    for level in scheme.get("levels") or LEVELS:
        if level not in targets:
            continue
        target, actual = targets[level], actuals.get(level)
        missed = _missed(actual, target)
        if missed:
            points = _dec(target) - _dec(actual)
            amount = _money(points * per_point / 100 * fee)
            calc = (f"{actual}% < target {target}%: {points} points × {per_point}% × {fee} "
                    f"= {amount}")
        else:
            amount = Decimal("0")
            calc = ("no figure for the period: no credit" if actual is None
                    else f"{actual}% ≥ target {target}%: no credit")
        result.lines.append(CreditLine(level, target, actual, missed, amount, calc))
    gross = sum((line.amount for line in result.lines), Decimal("0"))
    result.capped = gross > cap
    result.total = min(gross, cap)
    result.note = (f"sum {gross} capped at {cap_pct}% of the fee = {cap}" if result.capped
                   else f"sum {gross} (cap {cap_pct}% = {cap})")
    return result


def compute_credits(scheme: dict | None, fee: Decimal, targets: dict, actuals: dict,
                    next_actuals: dict | None = None, currency: str = "USD") -> CreditResult | None:
    """Dispatch on ``scheme["kind"]``; None when the contract has no credit scheme."""
    kind = (scheme or {}).get("kind")
    fee = _dec(fee or 0)
    if kind == "pool":
        return pool_credit(scheme, fee, targets, actuals, next_actuals, currency)
    if kind == "per_point":
        return per_point_credit(scheme, fee, targets, actuals, currency)
    return None


def credits_for(report) -> CreditResult | None:
    """The credits a metrics report's contract gives (earn-back unknown until next period)."""
    contract = report.contract
    if contract is None:
        return None
    targets = {"attainment": contract.attainment_target,
               "qa_accuracy": contract.qa_accuracy_target}
    actuals = {"attainment": report.total.attainment, "qa_accuracy": report.qa["accuracy_pct"]}
    return compute_credits(contract.credit_scheme, contract.monthly_fee, targets, actuals,
                           currency=contract.currency)
