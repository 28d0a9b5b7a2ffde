"""nudge-engine: picks the next health nudge for a patient, behind fail-closed clinical guardrails."""

__version__ = "0.1.0"
