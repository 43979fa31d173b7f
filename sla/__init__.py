"""SLA: business calendars, task clocks, the sweep and escalation queues."""
