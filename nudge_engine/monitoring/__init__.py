"""Monitoring: notice when personalization stops helping, drifts, starves patients or goes stale.

Pure: ``settings`` (``NUDGE_MONITOR_*`` thresholds), ``psi``, ``snapshot`` (the aggregates),
``checks`` (findings and alerts). Database: ``queries`` (fills a snapshot), ``checkup`` (one run:
snapshot, experiment analysis, findings). Output: ``alerts`` (structlog event, Prometheus metrics on
a registry passed in, ``alert_raised`` audit records).
"""
