"""Integrations and automation: how work reaches us from, and goes back to, clients' systems.

* ``email_intake`` turns messages delivered to ``<code>@<INTAKE_DOMAIN>`` into tasks, thread
  replies or items of the intake triage queue; ``smtp_server`` is the aiosmtpd process that
  feeds it, one transaction per message.
* ``rules`` is the one rule engine (pure functions); ``automation`` loads a client's rules,
  computes the intake checks and applies the outcome to a task.
* ``webhooks`` (endpoints and secrets), ``emit`` (events from audit rows, in the same
  transaction) and ``delivery`` (signed POSTs, retries, auto-disable) write back to the
  client's systems; ``ssrf`` keeps those POSTs off private networks.
* ``packages`` stores completed-work documents and signs expiring download links.
* ``hooks`` wires automation and webhook emission to the session's commit, so the other areas
  need not call us.
"""
