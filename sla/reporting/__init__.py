"""SLA reporting: metrics by SQL aggregation, service credits, charts, PDF, jobs and views."""
