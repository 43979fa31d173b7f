"""Intake: how work arrives (portal form, JSON API, bulk CSV) and the rules it must pass.

``fields`` turns a task type's ``intake_schema`` into the one set of field rules;
``service`` creates tasks; ``bulk`` imports CSV files; ``documents`` checks and
stores attachments; ``idempotency`` makes API retries safe.
"""
