"""Patient feature columns straight from stored clinical rows, with numpy instead of Python objects.

``columns_from_rows(rows, as_of, ruleset, contexts)`` gives the same :class:`PatientColumns` as
``PatientColumns.from_contexts`` over the contexts those rows make (a property test holds the two
equal), but reads each feature for all patients at once:

- conditions, procedures, medications, observations (latest, any, missing, persistent) and age are
  array operations over the rows. Value-set membership is decided once per distinct coding; a
  coding that hits a value set's exclusions vetoes its whole resource, as ``CodeMatcher.matches``
  does. Unit conversion applies the same arithmetic steps as ``units.convert``, so values are
  bit-identical at every threshold.
- every other feature (pregnancy, clinician facts, weight gain, and any new kind) is read by its own
  Python reader, only for the patients whose rows can change it; everyone else gets the reading of
  an empty record; their contexts are rebuilt from the rows (``RowContexts``).

A feature whose array reading raises fails closed: its column is marked as an error for every patient.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Coding, PatientContext
from nudge_engine.guardrails import units
from nudge_engine.guardrails.columns import PatientColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.guardrails.evaluate import read_safely, record_failure
from nudge_engine.guardrails.features import (
    ACTIVE_STATUSES,
    EXCLUDED_VERIFICATION,
    FINAL_OBSERVATION,
    HISTORY_STATUSES,
    MEDICATION_NEVER,
    OPERATORS,
    PROCEDURE_NEVER,
    Age,
    AnyObservation,
    BmiSource,
    ConditionFeature,
    FactFeature,
    Feature,
    LatestObservation,
    MedicationFeature,
    ObservationMissing,
    PatientView,
    PersistentObservation,
    ProcedureFeature,
    WeightGain,
    number,
)
from nudge_engine.guardrails.pregnancy import PregnancyFeature
from nudge_engine.guardrails.row_contexts import RowContexts
from nudge_engine.guardrails.rows import (
    BoolArray,
    ClinicalRows,
    Coded,
    FloatArray,
    IntArray,
    Labels,
    Times,
    epoch_day,
    micros,
)
from nudge_engine.guardrails.timewindows import Span, utc
from nudge_engine.guardrails.valuesets import CodeMatcher

Reading = tuple[FloatArray, BoolArray]  # (value, undefined) per patient


def columns_from_rows(
    rows: ClinicalRows, as_of: datetime, ruleset: CompiledRuleSet, contexts: RowContexts | None = None
) -> PatientColumns:
    """Every feature column of ``ruleset`` at ``as_of``; ``contexts`` rebuilds patients for the Python readers."""
    reader = _RowReader(rows, utc(as_of), contexts or RowContexts(rows))
    n = rows.n_patients
    values: dict[str, FloatArray] = {}
    undefined: dict[str, BoolArray] = {}
    errors: dict[str, BoolArray] = {}
    for key, feature in ruleset.features.items():
        errors[key] = np.zeros(n, dtype=np.bool_)
        try:
            value, undef = reader.read(feature, errors[key])
        except Exception as exc:
            record_failure("-", "error", f"feature read failed: {key.split(':')[0]} ({exc.__class__.__name__})")
            value, undef = np.full(n, np.nan), np.ones(n, dtype=np.bool_)
            errors[key][:] = True
        values[key], undefined[key] = value, undef
    return PatientColumns(reader.at, n, values, undefined, errors)


class _RowReader:
    def __init__(self, rows: ClinicalRows, at: datetime, contexts: RowContexts) -> None:
        self.rows = rows
        self.at = at
        self.at_us = micros(at)
        self.at_day = epoch_day(at.date())
        self.n = rows.n_patients
        self._contexts = contexts
        self._views: dict[int, PatientView] = {}
        self._hits: dict[int, tuple[BoolArray, BoolArray]] = {}
        obs = rows.observations
        loinc = np.fromiter((s == CodeSystem.LOINC for s, _ in rows.codings), dtype=np.bool_,
                            count=len(rows.codings))
        self._obs_base = (
            obs.status.isin(FINAL_OBSERVATION) & obs.effective.present & ~np.isnan(obs.value)
            & (loinc[obs.coded.code] if len(obs.coded.code) else np.zeros(0, dtype=np.bool_))
        )
        self._obs_instant = obs.effective.instant
        self._obs_day = obs.effective.day

    # --- dispatch ----------------------------------------------------------------------------------

    def read(self, feature: Feature, errors: BoolArray) -> Reading:
        if isinstance(feature, ConditionFeature):
            return self.condition(feature)
        if isinstance(feature, ProcedureFeature):
            return self.procedure(feature)
        if isinstance(feature, MedicationFeature):
            return self.medication(feature)
        if isinstance(feature, LatestObservation):
            return self.latest(feature)
        if isinstance(feature, ObservationMissing):
            return self.missing(feature)
        if isinstance(feature, AnyObservation):
            return self.any_observation(feature)
        if isinstance(feature, PersistentObservation):
            return self.persistent(feature)
        if isinstance(feature, Age):
            return self.age()
        if isinstance(feature, FactFeature):
            return self.fact(feature)
        if isinstance(feature, PregnancyFeature):
            return self.pregnancy(feature)
        return self.one_by_one(feature, self.touched(feature), errors)

    # --- shared pieces -------------------------------------------------------------------------------

    def is_after(self, t: Times) -> BoolArray:
        return np.where(t.date_only, t.day > self.at_day, t.us > self.at_us)

    def within(self, t: Times, low: Span | None, high: Span | None) -> BoolArray:
        ok = t.present & ~self.is_after(t)
        for bound, is_low in ((low, True), (high, False)):
            if bound is None:
                continue
            if bound.days is not None:
                age, limit = self.at_day - t.day, bound.days
            else:
                age, limit = self.at_us - t.instant, (bound.seconds or 0) * 1_000_000
                ok &= age >= 0
            ok &= (age >= limit) if is_low else (age <= limit)
        return ok

    def per_patient(self, patient: IntArray, mask: BoolArray) -> BoolArray:
        return np.bincount(patient[mask], minlength=self.n)[: self.n] > 0

    def code_hits(self, matcher: CodeMatcher) -> tuple[BoolArray, BoolArray]:
        found = self._hits.get(id(matcher))
        if found is None:
            codings = [Coding(s, c) for s, c in self.rows.codings]
            found = (
                np.fromiter((matcher.includes(x) for x in codings), dtype=np.bool_, count=len(codings)),
                np.fromiter((matcher.excludes(x) for x in codings), dtype=np.bool_, count=len(codings)),
            )
            self._hits[id(matcher)] = found
        return found

    def matched(self, coded: Coded, matcher: CodeMatcher) -> BoolArray:
        """Rows whose resource is in the value set: some coding included, none excluded."""
        if coded.size == 0:
            return np.zeros(0, dtype=np.bool_)
        include, exclude = self.code_hits(matcher)
        inc, exc = include[coded.code], exclude[coded.code]
        in_set = np.bincount(coded.resource, weights=inc) > 0
        if exc.any():
            in_set &= ~(np.bincount(coded.resource, weights=exc) > 0)
        return in_set[coded.resource]

    @staticmethod
    def either(first: Times, second: Times) -> Times:
        """``first`` where present, else ``second`` (``cond.onset or cond.recorded``)."""
        use = first.present
        return Times(np.where(use, first.us, second.us), use | second.present,
                     np.where(use, first.date_only, second.date_only))

    @staticmethod
    def later(a: Times, b: Times) -> Times:
        """The later of two optional moments by instant (``a`` on a tie), or whichever is present."""
        use_a = a.present & (~b.present | (a.instant >= b.instant))
        return Times(np.where(use_a, a.us, b.us), a.present | b.present, np.where(use_a, a.date_only, b.date_only))

    def result(self, hit: BoolArray, undefined_rows: BoolArray | None, patient: IntArray) -> Reading:
        value = self.per_patient(patient, hit)
        undefined = (self.per_patient(patient, undefined_rows) & ~value if undefined_rows is not None
                     else np.zeros(self.n, dtype=np.bool_))
        return value.astype(np.float64), undefined

    # --- conditions, procedures, medications ----------------------------------------------------------

    def condition(self, f: ConditionFeature) -> Reading:
        c = self.rows.conditions
        m = self.matched(c.coded, f.matcher) & ~c.verification_status.isin(EXCLUDED_VERIFICATION)
        if f.history:
            m &= c.clinical_status.where(lambda s: s is None or s in HISTORY_STATUSES)
        else:
            m &= c.clinical_status.where(lambda s: s is None or s in ACTIVE_STATUSES)
            m &= ~c.abatement.present | self.is_after(c.abatement)
        dated = self.either(c.onset, c.recorded)
        m &= ~(dated.present & self.is_after(dated))
        window = f.onset or f.recorded
        if window is None:
            return self.result(m, None, c.coded.patient)
        moment = c.onset if f.onset is not None else self.later(c.onset, c.recorded)
        hit = m & self.within(moment, window[0], window[1])
        undated = m & ~moment.present
        if f.on_missing_date == "match":
            hit |= undated
        return self.result(hit, undated if f.on_missing_date == "undefined" else None, c.coded.patient)

    def procedure(self, f: ProcedureFeature) -> Reading:
        p = self.rows.procedures
        m = self.matched(p.coded, f.matcher) & ~p.status.isin(PROCEDURE_NEVER)
        undated = m & ~p.performed.present
        if f.performed is None:
            hit = m & (~p.performed.present | ~self.is_after(p.performed))
            return self.result(hit, None, p.coded.patient)
        hit = m & self.within(p.performed, f.performed[0], f.performed[1])
        if f.on_missing_date == "match":
            hit |= undated
        return self.result(hit, undated if f.on_missing_date == "undefined" else None, p.coded.patient)

    def medication(self, f: MedicationFeature) -> Reading:
        md = self.rows.medications
        m = self.matched(md.coded, f.matcher) & ~md.status.isin(MEDICATION_NEVER)
        m &= ~(md.start.present & self.is_after(md.start))
        end = md.end
        if f.washout is None:
            running = self.is_after(end) | (end.instant >= self.at_us)
        elif f.washout.days is not None:
            running = (self.at_day - end.day) <= f.washout.days
        else:
            running = (self.at_us - end.instant) <= (f.washout.seconds or 0) * 1_000_000
        hit = m & (md.status.isin({"active"}) | (end.present & running))
        return self.result(hit, None, md.coded.patient)

    # --- observations -----------------------------------------------------------------------------------

    def observation_mask(self, matcher: CodeMatcher, lookback: Span | None) -> BoolArray:
        """Final observations with a value and a code of ``matcher`` in the look-back."""
        obs = self.rows.observations
        loinc = matcher.loinc_codes()
        wanted = np.fromiter((s == CodeSystem.LOINC and c in loinc for s, c in self.rows.codings),
                             dtype=np.bool_, count=len(self.rows.codings))
        mask = self._obs_base & wanted[obs.coded.code] if obs.coded.size else self._obs_base
        return mask & self.within(obs.effective, None, lookback)

    def observations(self, matcher: CodeMatcher, lookback: Span | None) -> IntArray:
        """Row numbers of :meth:`observation_mask`."""
        return np.flatnonzero(self.observation_mask(matcher, lookback))

    def latest_of(self, index: IntArray) -> IntArray:
        """Per patient with any of ``index``: the row of the latest one (stable: the last on a tie)."""
        ordered = self.latest_order(index)
        patient = self.rows.observations.coded.patient[ordered]
        last = np.ones(len(ordered), dtype=np.bool_)
        last[:-1] = patient[1:] != patient[:-1]
        return ordered[last]

    def converted(self, index: IntArray, unit: str, matcher_analyte: object = None) -> tuple[FloatArray, BoolArray]:
        """Values of rows ``index`` in ``unit`` and whether each could be converted."""
        obs = self.rows.observations
        out = obs.value[index].copy()
        ok = np.ones(len(index), dtype=np.bool_)
        labels: Labels = obs.unit
        ids = labels.ids[index]
        for label in np.unique(ids):
            steps = units.conversion(labels.vocabulary[int(label)], unit, matcher_analyte)  # type: ignore[arg-type]
            rows = ids == label
            if steps is None:
                ok[rows] = False
                continue
            for op, operand in steps:
                out[rows] = out[rows] * operand if op == "mul" else out[rows] / operand
        return out, ok

    def latest(self, f: LatestObservation) -> Reading:
        found = self.latest_of(self.observations(f.matcher, f.lookback))
        patient = self.rows.observations.coded.patient[found]
        value = np.full(self.n, np.nan)
        undefined = np.zeros(self.n, dtype=np.bool_)
        converted, ok = self.converted(found, f.unit, f.matcher.analyte)
        if f.project == "gestational_age":
            converted = converted + (self.at_day - self._obs_day[found]) / 7.0
        value[patient[ok]] = converted[ok]
        undefined[patient[~ok]] = True
        if f.fallback is not None:
            none = np.ones(self.n, dtype=np.bool_)
            none[patient] = False
            bmi, bmi_undefined = self.bmi(f.fallback, f.lookback)
            value = np.where(none, bmi, value)
            undefined = np.where(none, bmi_undefined, undefined)
        return value, undefined

    def bmi(self, source: BmiSource, lookback: Span) -> Reading:
        obs = self.rows.observations
        weights = self.latest_of(self.observations(source.weight, lookback))
        heights = self.latest_of(self.observations(source.height, lookback))
        kg, metres = np.full(self.n, np.nan), np.full(self.n, np.nan)
        kg_ok, m_ok = np.zeros(self.n, dtype=np.bool_), np.zeros(self.n, dtype=np.bool_)
        has_w, has_h = np.zeros(self.n, dtype=np.bool_), np.zeros(self.n, dtype=np.bool_)
        w_patient, h_patient = obs.coded.patient[weights], obs.coded.patient[heights]
        has_w[w_patient], has_h[h_patient] = True, True
        kg[w_patient], kg_ok[w_patient] = self.converted(weights, "kg")
        metres[h_patient], m_ok[h_patient] = self.converted(heights, "m")
        both = has_w & has_h
        good = both & kg_ok & m_ok & (np.nan_to_num(metres) > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(good, kg / (metres * metres), np.nan)
        return value, both & ~good

    def missing(self, f: ObservationMissing) -> Reading:
        present = self.per_patient(self.rows.observations.coded.patient, self.observation_mask(f.matcher, f.lookback))
        if f.fallback is not None:
            bmi, _ = self.bmi(f.fallback, f.lookback)
            present |= ~np.isnan(bmi)
        return (~present).astype(np.float64), np.zeros(self.n, dtype=np.bool_)

    def any_observation(self, f: AnyObservation) -> Reading:
        found = self.observations(f.matcher, f.lookback)
        patient = self.rows.observations.coded.patient[found]
        converted, ok = self.converted(found, f.unit, f.matcher.analyte)
        passes = ok & _compare(converted, f.op, f.threshold)
        any_found = np.bincount(patient, minlength=self.n)[: self.n] > 0
        any_pass = np.bincount(patient[passes], minlength=self.n)[: self.n] > 0
        any_bad = np.bincount(patient[~ok], minlength=self.n)[: self.n] > 0
        value = np.where(any_pass, 1.0, np.where(any_bad | ~any_found, np.nan, 0.0))
        return value, ~any_pass & any_bad

    def persistent(self, f: PersistentObservation) -> Reading:
        found = self.latest_order(self.observations(f.matcher, f.lookback))
        obs = self.rows.observations
        patient = obs.coded.patient[found]
        converted, ok = self.converted(found, f.unit, f.matcher.analyte)
        passes = ok & _compare(converted, f.op, f.threshold)
        bad = np.bincount(patient[~ok], minlength=self.n)[: self.n] > 0
        count = np.bincount(patient[passes], minlength=self.n)[: self.n]
        last = np.ones(len(found), dtype=np.bool_)
        last[:-1] = patient[1:] != patient[:-1]
        latest_passes = np.zeros(self.n, dtype=np.bool_)
        latest_passes[patient[last]] = passes[last]
        days = self._obs_day[found][passes]
        first_day = np.full(self.n, np.iinfo(np.int64).max)
        last_day = np.full(self.n, np.iinfo(np.int64).min)
        np.minimum.at(first_day, patient[passes], days)
        np.maximum.at(last_day, patient[passes], days)
        span = np.where(count >= 2, last_day - first_day, -1)
        value = ~bad & latest_passes & (count >= 2) & (span >= f.min_span_days)
        return value.astype(np.float64), bad

    def latest_order(self, index: IntArray) -> IntArray:
        """``index`` sorted by patient, then instant (stable)."""
        patient = self.rows.observations.coded.patient[index]
        return index[np.lexsort((index, self._obs_instant[index], patient))]

    # --- clinician facts and pregnancy -------------------------------------------------------------------

    def fact(self, f: FactFeature) -> Reading:
        facts = self.rows.facts
        m = facts.kind.isin({f.kind})
        m &= ~(facts.effective.present & self.is_after(facts.effective))
        if f.within is not None:
            m &= self.within(facts.effective, None, f.within)
        if f.values is not None and m.any():
            wanted = f.values
            for i in np.flatnonzero(m).tolist():
                text = facts.value_string.vocabulary[int(facts.value_string.ids[i])]
                shown = text or (number(float(facts.value[i])) if not np.isnan(facts.value[i]) else "")
                m[i] = shown.strip().lower() in wanted
        return self.result(m, None, facts.patient)

    def pregnancy(self, f: PregnancyFeature) -> Reading:
        """rules-spec §0.20, as ``PregnancyFeature.read``: evidence not cancelled by a later end."""
        rows = self.rows
        c, p, o = rows.conditions, rows.procedures, rows.observations
        last_end = np.full(self.n, np.iinfo(np.int64).min)
        counted = ~c.verification_status.isin(EXCLUDED_VERIFICATION)
        pregnancy_condition = self.matched(c.coded, f.conditions)

        def ended(patient: IntArray, mask: BoolArray, days: IntArray) -> None:
            np.maximum.at(last_end, patient[mask], days[mask])

        ended(c.coded.patient, counted & pregnancy_condition & c.abatement.present & ~self.is_after(c.abatement),
              c.abatement.day)
        dated = self.either(c.onset, c.recorded)
        ended(c.coded.patient, counted & self.matched(c.coded, f.end_conditions) & dated.present
              & ~self.is_after(dated), dated.day)
        ended(p.coded.patient, ~p.status.isin(PROCEDURE_NEVER) & p.performed.present & ~self.is_after(p.performed)
              & self.matched(p.coded, f.end_procedures), p.performed.day)
        status_obs = o.status.isin(FINAL_OBSERVATION) & self.matched(o.coded, f.status_observation)
        snomed = CodeSystem.SNOMED.value
        ended(o.coded.patient, status_obs & o.effective.present & ~self.is_after(o.effective)
              & o.value_code.isin({f"{snomed}|{f.not_pregnant_value}"}), o.effective.day)
        has_end = last_end > np.iinfo(np.int64).min

        def evidence(patient: IntArray, mask: BoolArray, moment: Times) -> BoolArray:
            undated = mask & ~moment.present & ~has_end[patient]
            dated_ok = (mask & self.within(moment, None, f.expiry)
                        & ~(has_end[patient] & (last_end[patient] > moment.day)))
            return self.per_patient(patient, undated | dated_ok)

        active = counted & pregnancy_condition & c.clinical_status.where(lambda s: s is None or s in ACTIVE_STATUSES)
        active &= ~c.abatement.present | self.is_after(c.abatement)
        value = evidence(c.coded.patient, active, dated)
        value |= evidence(o.coded.patient, status_obs & o.value_code.isin({f"{snomed}|{f.pregnant_value}"}),
                          o.effective)
        return value.astype(np.float64), np.zeros(self.n, dtype=np.bool_)

    # --- age, and the Python readers for the rest ----------------------------------------------------------

    def age(self) -> Reading:
        years = [PatientContext(birth_date=b).age_at(self.at) if b is not None else None for b in self.rows.birth_date]
        value = np.array([np.nan if y is None else float(y) for y in years], dtype=np.float64).reshape(self.n)
        return value, np.isnan(value)

    def touched(self, feature: Feature) -> BoolArray:
        """Patients whose rows can make ``feature`` read differently from an empty record."""
        rows = self.rows
        if isinstance(feature, WeightGain):
            recent = self.observation_mask(feature.matcher, feature.latest_within)
            return self.per_patient(rows.observations.coded.patient, recent)
        return np.ones(self.n, dtype=np.bool_)

    def one_by_one(self, feature: Feature, touched: BoolArray, errors: BoolArray) -> Reading:
        empty, failed = read_safely(feature, PatientView(PatientContext()), self.at)
        value = np.full(self.n, empty.value)
        undefined = np.full(self.n, empty.undefined)
        errors[:] = failed
        for i in np.flatnonzero(touched).tolist():
            view = self._views.get(i)
            if view is None:
                view = self._views[i] = PatientView(self._contexts(i))
            reading, failed = read_safely(feature, view, self.at)
            value[i], undefined[i], errors[i] = reading.value, reading.undefined, failed
            if failed:
                record_failure("-", "error", f"feature read failed: {feature.key.split(':')[0]}")
        return value, undefined


def _compare(values: FloatArray, op: str, threshold: float) -> BoolArray:
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {op!r}")
    found: BoolArray = np.asarray(OPERATORS[op](values, threshold), dtype=np.bool_)
    return found
