"""Service credits: what a missed contract target costs the provider, with the sum shown.

Pure functions over plain numbers so every figure can be checked by hand. Two schemes,
chosen by ``Contract.credit_scheme["kind"]``:

* ``pool``: credit for a missed level = pool allocation % x the level's allocation % x
  at-risk amount, where at-risk amount = at-risk % x monthly invoice; summed over the
  missed levels and capped at the at-risk amount. With ``earn_back`` a level's credit is
  earned back (waived) when the following period (``Period.following``: the next month
  for a month) beats that level's target; until that period has ended the credit stands
  and the earn-back is shown as pending.
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
from datetime import UTC, date, datetime
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
    earned_back_amount: Decimal = Decimal("0")  # the credit the next period won back


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
    # Earn-back (pool scheme with ``earn_back``): the credit before it, the part won back,
    # and how it was decided (EarnBack); ``total`` is what remains after it.
    before_earn_back: Decimal = Decimal("0")
    earned_back: Decimal = Decimal("0")
    earn_back: EarnBack | None = None
    # What this period's figures win back of the previous period's credit (the invoice for
    # this period is where that credit is returned).
    previous: PreviousEarnBack | None = None

    def as_dict(self) -> dict:
        return {
            "scheme": self.kind, "currency": self.currency,
            "monthly_fee": str(self.monthly_fee), "cap": str(self.cap),
            "total": str(self.total), "capped": self.capped, "note": self.note,
            "lines": [
                {"level": x.level, "target": x.target, "actual": x.actual, "missed": x.missed,
                 "amount": str(x.amount), "calculation": x.calculation,
                 "earned_back": x.earned_back, "earned_back_amount": str(x.earned_back_amount)}
                for x in self.lines
            ],
            "total_before_earn_back": str(self.before_earn_back),
            "earned_back": str(self.earned_back),
            "earn_back": self.earn_back.as_dict() if self.earn_back else None,
            "previous_period_earn_back": self.previous.as_dict() if self.previous else None,
        }


@dataclass(frozen=True)
class EarnBack:
    """How a pool credit's earn-back was decided, from the following period's figures.

    ``status``: ``pending`` (the following period has not ended), ``earned_back`` (at
    least one missed level beaten) or ``not_earned_back``.
    """

    status: str
    start: date
    end: date
    actuals: dict
    calculation: str

    def as_dict(self) -> dict:
        return {"status": self.status,
                "next_period": {"from": self.start.isoformat(), "to": self.end.isoformat()},
                "next_period_actuals": self.actuals, "calculation": self.calculation}


@dataclass(frozen=True)
class PreviousEarnBack:
    """The previous period's credit and the part of it this period's figures earn back."""

    start: date
    end: date
    actuals: dict
    credit: Decimal
    earned_back: Decimal
    calculation: str

    def as_dict(self) -> dict:
        return {"period": {"from": self.start.isoformat(), "to": self.end.isoformat()},
                "actuals": self.actuals, "credit": str(self.credit),
                "earned_back": str(self.earned_back), "calculation": self.calculation}


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
        amount = won_back = Decimal("0")
        calc = f"{actual}% ≥ target {target}%: no credit"
        if missed:
            amount = _money(pool_pct / 100 * _dec(allocation) / 100 * at_risk)
            calc = (f"{actual}% < target {target}%: {pool_pct}% pool × {_dec(allocation)}% "
                    f"allocation × {at_risk} at risk ({at_risk_pct}% × {fee}) = {amount}")
            nxt = (next_actuals or {}).get(level)
            if scheme.get("earn_back") and nxt is not None and nxt > target:
                calc += f"; earned back (next period {nxt}% > {target}%)"
                amount, won_back = Decimal("0"), amount
        elif actual is None:
            calc = "no figure for the period: no credit"
        result.lines.append(CreditLine(level, target, actual, missed, amount, calc,
                                       won_back > 0, won_back))
    gross = sum((line.amount for line in result.lines), Decimal("0"))
    result.capped = gross > at_risk
    result.total = min(gross, at_risk)
    # Earn-back removes levels before the cap applies, so what is won back is the capped
    # credit without earn-back minus the capped credit with it.
    won = sum((line.earned_back_amount for line in result.lines), Decimal("0"))
    result.before_earn_back = min(gross + won, at_risk)
    result.earned_back = result.before_earn_back - result.total
    result.note = (f"sum {gross} capped at the at-risk amount {at_risk}" if result.capped
                   else f"sum {gross} (cap {at_risk})")
    if won:
        result.note += (f"; {result.before_earn_back} before earn-back − {result.earned_back}"
                        f" earned back = {result.total}")
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
    result.total = result.before_earn_back = min(gross, cap)
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


def credits_for(report, now: datetime | None = None) -> CreditResult | None:
    """The credits a metrics report's contract gives, with earn-back both ways.

    Only for a pool scheme with ``earn_back``: this period's credit is earned back when the
    following period beats a missed level's target (decided once that period has ended),
    and the previous period's credit is earned back by this period's figures. Each side
    costs two small aggregates (``level_actuals``), run only when a level was missed.
    """
    contract = report.contract
    if contract is None:
        return None
    scheme = contract.credit_scheme or {}
    targets = {"attainment": contract.attainment_target,
               "qa_accuracy": contract.qa_accuracy_target}
    actuals = {"attainment": report.total.attainment, "qa_accuracy": report.qa["accuracy_pct"]}
    result = compute_credits(scheme, contract.monthly_fee, targets, actuals,
                             currency=contract.currency)
    if result is None or result.kind != "pool" or not scheme.get("earn_back"):
        return result
    if any(line.missed for line in result.lines):
        result = _with_earn_back(report, result, targets, actuals, now or datetime.now(UTC))
    result.previous = _previous_earn_back(report, targets, actuals)
    return result


def _shown(actuals: dict) -> str:
    return ", ".join(f"{level} {value}%" if value is not None else f"{level} no figure"
                     for level, value in actuals.items())


def _with_earn_back(report, result: CreditResult, targets: dict, actuals: dict,
                    now: datetime) -> CreditResult:
    """``result`` recomputed with the following period's figures (or marked pending)."""
    from .metrics import level_actuals

    contract, scheme = report.contract, report.contract.credit_scheme
    nxt = report.period.following()
    if nxt.hi > now:
        result.earn_back = EarnBack(
            "pending", nxt.start, nxt.end, {},
            f"decided when the next period ({nxt.label}) has ended: a missed level's credit "
            f"is earned back if that period beats the level's target")
        return result
    next_actuals = level_actuals(report.client.id, nxt)
    result = compute_credits(scheme, contract.monthly_fee, targets, actuals, next_actuals,
                             currency=contract.currency)
    beaten = [line for line in result.lines if line.earned_back]
    calc = (f"next period {nxt.label}: {_shown(next_actuals)}. "
            + (f"Earned back: {', '.join(x.level for x in beaten)}; credit "
               f"{result.before_earn_back} − {result.earned_back} = {result.total}"
               if beaten else "no missed level's target beaten: the credit stands"))
    result.earn_back = EarnBack("earned_back" if beaten else "not_earned_back",
                                nxt.start, nxt.end, next_actuals, calc)
    return result


def _previous_earn_back(report, targets: dict, actuals: dict) -> PreviousEarnBack | None:
    """The previous period's credit under the same contract, and what this period wins back.

    None when the contract did not cover the previous period or nothing was missed in it.
    """
    from sla.clock import active_contract

    from .metrics import level_actuals

    contract = report.contract
    prev = report.period.preceding()
    earlier = active_contract(report.client.id, prev.end)
    if earlier is None or earlier.id != contract.id:
        return None
    prev_actuals = level_actuals(report.client.id, prev)
    prior = compute_credits(contract.credit_scheme, contract.monthly_fee, targets, prev_actuals,
                            actuals, currency=contract.currency)
    if not any(line.missed for line in prior.lines):
        return None
    beaten = [line.level for line in prior.lines if line.earned_back]
    calc = (f"previous period {prev.label}: {_shown(prev_actuals)}: credit "
            f"{prior.before_earn_back}. This period: {_shown(actuals)}. "
            + (f"Earned back: {', '.join(beaten)} = {prior.earned_back}" if beaten
               else "no missed level's target beaten: nothing earned back"))
    return PreviousEarnBack(prev.start, prev.end, prev_actuals, prior.before_earn_back,
                            prior.earned_back, calc)
