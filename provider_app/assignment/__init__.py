"""Skill-based assignment: eligibility rules, pull ("Get next"), batch and lead actions.

Public contract: :func:`claim_next` (see PRODUCT.md).
"""

from .claim import claim_next

__all__ = ["claim_next"]
