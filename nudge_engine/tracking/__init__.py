"""Trusting the events the models learn from: the tracking plan, quarantine, intake counts and the volume report.

``plan`` is pure (pydantic + YAML); ``settings`` holds the data-governance settings (tracking mode,
retention windows, small-cell threshold); ``intake`` stores quarantined events and counts refusals;
``report`` gives event volume and refusal rates by type with small cells suppressed.
"""
