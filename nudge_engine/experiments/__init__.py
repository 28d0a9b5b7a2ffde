"""Experiments: declarative A/B tests and holdouts, deterministic assignment, and their analysis.

Pure logic (no database): ``model`` (the YAML schema), ``loader``, ``assignment`` (``assign``: arms,
ranking policy and holdout per patient), ``checks`` (overlaps), ``srm`` (sample-ratio mismatch),
``stats`` (intervals, Holm), ``analysis`` (results per arm and segment, harm flags), ``responses``
(the simulated patients' hidden response model).

Database: ``repository`` (definitions, assignments, exposures, the data analysis reads) and
``simulation`` (``simulate_weeks``: daily builds on the stored cohort with planted effects).
"""
