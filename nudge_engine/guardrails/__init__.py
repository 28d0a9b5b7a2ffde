"""Clinical guardrails: a declarative, fail-closed rule layer between candidate nudges and patients.

Load and compile once, then decide per request or in batch::

    ruleset = compile_ruleset(load_ruleset(settings.rules_dir))
    decision = decide(context, nudge, ruleset, at)              # per request, with evidence
    result = evaluate_batch(PatientColumns.from_contexts(contexts, at, ruleset),
                            NudgeColumns.from_nudges(nudges, ruleset), ruleset)   # build cycle

Modules: ``schema`` (the YAML language), ``loader``, ``compiler``, ``features`` / ``pregnancy`` (data
matching, rules-spec §1.3), ``logic`` (three-valued logic, scalar and numpy), ``evaluate`` (per
request), ``columns`` / ``batch`` (columnar), ``digest``, ``cases`` (examples beside rules), ``replay``.
"""
