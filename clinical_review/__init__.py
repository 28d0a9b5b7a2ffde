"""The clinician-facing review queue: use cases, JSON API and pages, clinician accounts.

Layout: ``model`` (statuses, commands, read models), ``service`` (use cases, one transaction each,
audited), ``queries`` (listing), ``accounts`` and ``auth`` (log-in, lock-out, sessions, CSRF),
``reasons`` (the shipped override-reason codes), ``rules`` and ``evidence`` (what a clinician
reads), ``routes/`` (``/v1/review`` JSON API, ``/review/`` pages), ``templates/`` and ``static/``.
"""

from clinical_review.accounts import ensure_demo_clinician

__all__ = ["ensure_demo_clinician"]
