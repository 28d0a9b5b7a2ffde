"""The build cycle: features -> segments -> candidates -> ranking -> guardrails -> ready queue."""
