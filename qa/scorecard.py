"""Scorecards: reading a reviewer's item results and scoring them against the SOP.

Pure functions, shared by production reviews, calibration and dispute recomputation, so a
score is computed in exactly one way: earned weight / applicable weight (N/A items drop
out of both), 0 % with a failed critical item, pass at or above the SOP's threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from provider_app.models import ScorecardItem

# Error categories a finding is filed under (reported by qa.metrics).
ERROR_CATEGORIES: dict[str, str] = {
    "wrong_limits": "Wrong limits",
    "named_insured_mismatch": "Named-insured mismatch",
    "missing_endorsement": "Missing endorsement",
    "wrong_effective_date": "Wrong effective date",
    "keying_error": "Keying error",
    "other": "Other",
}
RESULTS = ("pass", "fail", "na")
COMMENT_MAX = 2000


@dataclass(frozen=True)
class ItemEntry:
    """One item's result as entered: pass, fail (with category and comment) or na."""

    item_id: int
    result: str
    error_category: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class Score:
    score: float
    passed: bool
    critical_failure: bool
    earned: float
    applicable: float


class ScorecardError(ValueError):
    """Invalid scorecard input, with messages keyed by form field name."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("the scorecard has errors")
        self.errors = errors


def field_name(item: ScorecardItem, part: str) -> str:
    """Form field of one item: ``item-<position>-result|category|comment``."""
    return f"item-{item.position}-{part}"


def parse_entries(items: Iterable[ScorecardItem], data: Mapping[str, str]) -> list[ItemEntry]:
    """Read and validate every item's result from form data; raises ScorecardError."""
    items = list(items)
    errors: dict[str, list[str]] = {}
    entries = []
    for item in items:
        result = (data.get(field_name(item, "result")) or "").strip()
        category = (data.get(field_name(item, "category")) or "").strip() or None
        comment = (data.get(field_name(item, "comment")) or "").strip()
        if result not in RESULTS:
            errors[field_name(item, "result")] = ["Choose pass, fail or N/A."]
        elif result == "na" and not item.allow_na:
            errors[field_name(item, "result")] = ["N/A is not allowed for this item."]
        if result == "fail":
            if category not in ERROR_CATEGORIES:
                errors[field_name(item, "category")] = ["Choose the error category."]
            if not comment:
                errors[field_name(item, "comment")] = ["Say what is wrong."]
        else:
            category = None
        if len(comment) > COMMENT_MAX:
            errors[field_name(item, "comment")] = [f"At most {COMMENT_MAX} characters."]
        entries.append(ItemEntry(item.id, result, category, comment))
    if not errors and not any(
        e.result != "na" and item.weight > 0 for e, item in zip(entries, items, strict=True)
    ):
        errors["scorecard"] = ["Score at least one weighted item (not everything can be N/A)."]
    if errors:
        raise ScorecardError(errors)
    return entries


def compute_score(
    items: Iterable[ScorecardItem], results: Mapping[int, str], threshold: float
) -> Score:
    """Score item results (``item_id -> pass|fail|na``) against the SOP's scorecard."""
    earned = applicable = 0.0
    critical = False
    for item in items:
        result = results.get(item.id, "na")
        if result == "na":
            continue
        applicable += item.weight
        if result == "pass":
            earned += item.weight
        elif item.critical:
            critical = True
    if critical:
        return Score(0.0, False, True, earned, applicable)
    score = earned / applicable if applicable else 0.0
    return Score(score, score >= threshold - 1e-9, False, earned, applicable)
