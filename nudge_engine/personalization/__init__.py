"""Personalization: catalog, features, segments, candidates and burden, ranking, offline evaluation.

Pure logic over numpy arrays: no database, web or scheduler imports. The build cycle calls
:func:`~nudge_engine.personalization.pipeline.plan_batch` once per batch of patients; the API calls
:func:`~nudge_engine.personalization.burden.serve_time_check` at the moment of serving.

Flow of one batch::

    EventColumns ──> features ──> segments ──> candidates (eligibility, cooldown, caps, prefs)
                                                   │
                                  GuardrailPort.decide(pairs) ──> permitted / review / block
                                                   │
                          RankingPolicy (baseline + Thompson bandit) ──> BatchPlan
"""
