"""The columnar loader reads stored rows into exactly the columns the per-patient readers give."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.clinical_packs import load_clinical_rows
from nudge_engine.adapters.context_store import load_contexts, replace_contexts
from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.migrations import downgrade, upgrade
from nudge_engine.adapters.orm import ClinicalPackRow, PatientRow, new_id
from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Coding, Medication, PatientContext
from nudge_engine.guardrails.columns import NudgeColumns, PatientColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet, compile_ruleset
from nudge_engine.guardrails.decision import Outcome
from nudge_engine.guardrails.evaluate import decide
from nudge_engine.guardrails.loader import load_ruleset
from nudge_engine.guardrails.row_contexts import RowContexts
from nudge_engine.guardrails.row_features import columns_from_rows
from nudge_engine.personalization.catalog import load_catalog
from nudge_engine.privacy.erasure import erase_patient
from nudge_engine.services.build.flags import segment_flags, segment_flags_from_rows
from nudge_engine.services.build.guarding import ShardGuardrails
from tests.support.paths import PROJECT
from tests.support.world import NOW, make_container
from tests.unit.guardrails.conftest import AS_OF, patient
from tests.unit.guardrails.test_evaluators_agree import ICD, MEDS, OBS, PROCS, SNOMED, STATUSES, profiles

RULESET = compile_ruleset(load_ruleset(PROJECT / "rules"))
# the rules' window lengths in hours (P3D, P14D ... P365D; PT24H, PT72H) and a bit around each
EDGES = sorted({d * 24 + k for d in (0, 1, 3, 14, 21, 22, 30, 42, 56, 90, 294, 365) for k in (-1, 0, 1)}
               | {24, 25, 71, 72, 73, 8 * 24 - 1})


@st.composite
def edge_moments(draw: st.DrawFn) -> str:
    """Times on and around the rules' window edges, timed to the minute or to the second, or date-only."""
    hours = draw(st.sampled_from([0] * 8 + EDGES) if draw(st.integers(0, 4)) else st.integers(-24, 400 * 24))
    when = AS_OF - timedelta(hours=hours, minutes=draw(st.sampled_from([0, 0, 0, 0, 1, -1, 59])),
                             seconds=draw(st.sampled_from([0, 0, 0, 0, 1, -1])))
    return when.date().isoformat() if draw(st.booleans()) else when.isoformat().replace("+00:00", "Z")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _untied(profile: dict[str, Any]) -> dict[str, Any]:
    """Two readings of one code at the same instant have no 'latest': keep the first of each."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for obs in profile["observations"]:
        key = (obs["loinc"], obs["effective"])
        if key not in seen:
            seen.add(key)
            kept.append(obs)
    return {**profile, "observations": kept}


def _store(engine: Engine, contexts: list[PatientContext]) -> list[str]:
    ids = [new_id() for _ in contexts]
    with Session(engine) as session, session.begin():
        for pid, ctx in zip(ids, contexts, strict=True):
            born = ctx.birth_date
            session.add(PatientRow(id=pid, shard_key=0, created_at=datetime(2025, 1, 1, tzinfo=UTC),
                                   birth_year=born.year if born else None, birth_month=born.month if born else None))
        session.flush()
        replace_contexts(session, list(zip(ids, contexts, strict=True)), origin="fhir")
    return ids


def _both_ways(engine: Engine, ids: list[str]) -> tuple[PatientColumns, PatientColumns]:
    """(columns from the stored contexts by the per-patient readers, columns from the packs by numpy)."""
    with Session(engine) as session:
        stored = load_contexts(session, ids)
        expected = PatientColumns.from_contexts([stored[pid] for pid in ids], AS_OF, RULESET)
        got = columns_from_rows(load_clinical_rows(session, ids), AS_OF, RULESET)
    return expected, got


def _assert_same(expected: PatientColumns, got: PatientColumns, ruleset: CompiledRuleSet = RULESET) -> None:
    assert got.size == expected.size
    for key in ruleset.features:
        np.testing.assert_array_equal(got.values[key], expected.values[key], err_msg=key)
        np.testing.assert_array_equal(got.undefined[key], expected.undefined[key], err_msg=key)
        np.testing.assert_array_equal(got.errors[key], expected.errors[key], err_msg=key)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(profiles(edge_moments).map(_untied), min_size=1, max_size=8))
def test_columns_read_from_stored_rows_equal_the_per_patient_readers_over_the_same_rows(
    engine: Engine, profs: list[dict[str, Any]]
) -> None:
    ids = _store(engine, [patient(**p) for p in profs])
    _assert_same(*_both_ways(engine, ids))


def test_a_patient_without_any_clinical_row_reads_as_an_empty_record(engine: Engine) -> None:
    ids = _store(engine, [PatientContext()])
    with Session(engine) as session:
        got = columns_from_rows(load_clinical_rows(session, ids), AS_OF, RULESET)
    expected = PatientColumns.from_contexts([PatientContext()], AS_OF, RULESET)
    _assert_same(expected, got, RULESET)


def test_a_statement_and_a_request_sharing_an_id_are_read_back_as_two_medications(engine: Engine) -> None:
    ibuprofen_stopped = Medication((Coding(CodeSystem.RXNORM, "5640"),), "completed",
                                   resource_type="MedicationStatement", source_id="m1")
    warfarin_active = Medication((Coding(CodeSystem.RXNORM, "11289"),), "active",
                                 resource_type="MedicationRequest", source_id="m1")
    ids = _store(engine, [PatientContext(medications=(ibuprofen_stopped, warfarin_active))])
    with Session(engine) as session:
        stored = load_contexts(session, ids)[ids[0]]
        rebuilt = RowContexts(load_clinical_rows(session, ids))(0)
    assert sorted((m.resource_type, m.status, m.codings[0].code) for m in stored.medications) == [
        ("MedicationRequest", "active", "11289"), ("MedicationStatement", "completed", "5640")]
    assert sorted((m.status, m.codings[0].code) for m in rebuilt.medications) == [
        ("active", "11289"), ("completed", "5640")]
    _assert_same(*_both_ways(engine, ids))


FACTS = [("exercise-clearance", "vigorous"), ("exercise-clearance", " All "), ("exercise-clearance", "moderate"),
         ("fluid-restriction", None), ("severe-hypoglycaemia", None), ("nyha-class", "III"), ("nyha-class", "2"),
         ("nyha-class", None)]


FLAG_CODES = ["E11.9", "R73.03", "I10", "I11.0", "I50.9", "I25.10", "N18.3", "E66.9", "F32.A", "F33.1", "G47.00"]


def _edge_time(rng: random.Random) -> str:
    hours = rng.choice([0] * 8 + EDGES) if rng.random() < 0.8 else rng.randint(-24, 400 * 24)
    when = AS_OF - timedelta(hours=hours, minutes=rng.choice([0, 0, 0, 1, -1, 59]), seconds=rng.choice([0, 0, 1, -1]))
    return when.date().isoformat() if rng.random() < 0.5 else when.isoformat().replace("+00:00", "Z")


def _dense_profile(rng: random.Random) -> dict[str, Any]:
    """One or two facts per patient, each dated on or next to a window edge."""
    conditions = [{"system": "ICD-10-CM" if c[0].isalpha() else "SNOMED-CT", "code": c,
                   "status": rng.choice(STATUSES), "onset": _edge_time(rng),
                   **({"abatement": _edge_time(rng)} if rng.random() < 0.3 else {}),
                   **({"onset": None, "recorded": _edge_time(rng)} if rng.random() < 0.2 else {}),
                   **({"onset": None} if rng.random() < 0.1 else {})}
                  for c in rng.sample(ICD + SNOMED, rng.choice([0, 1, 1, 2]))]
    meds = [{"rxnorm": rx, "atc": atc, "status": rng.choice(["active", "stopped", "completed"]),
             "start": rng.choice(["2020-01-01", _edge_time(rng)]), "end": rng.choice([None, _edge_time(rng)])}
            for rx, atc in rng.sample(MEDS, rng.choice([0, 1, 1, 2]))]
    observations = []
    for loinc, unit, lo, hi in rng.sample(OBS, rng.choice([0, 1, 2, 3, 4])):
        for _ in range(rng.choice([1, 1, 2, 3])):
            observations.append({"loinc": loinc, "unit": unit, "value": round(rng.uniform(lo, hi), 1),
                                 "effective": _edge_time(rng)})
    if rng.random() < 0.2:
        observations.append({"loinc": "82810-3", "effective": _edge_time(rng), "value_code": {
            "system": "SNOMED-CT", "code": rng.choice(["77386006", "60001007"])}})
    procedures = [{"system": s, "code": c, "performed": _edge_time(rng)}
                  for s, c in rng.sample(PROCS, rng.choice([0, 0, 1]))]
    facts = [{"kind": k, "value": v, "effective": _edge_time(rng)} for k, v in rng.sample(FACTS, rng.choice([0, 0, 1]))]
    return _untied({"age": rng.choice([None, *range(10, 90)]), "conditions": conditions, "medications": meds,
                    "observations": observations, "procedures": procedures, "facts": facts})


def test_columns_agree_on_a_large_seeded_cohort_dated_on_the_window_edges(engine: Engine) -> None:
    rng = random.Random(20251130)
    ids = _store(engine, [patient(**_dense_profile(rng)) for _ in range(1500)])
    _assert_same(*_both_ways(engine, ids))


def test_the_migration_that_adds_packs_packs_the_rows_already_stored(engine: Engine) -> None:
    rng = random.Random(7)
    ids = _store(engine, [patient(**_dense_profile(rng)) for _ in range(60)])
    downgrade(engine, "0004")  # back to before packs existed: only the rows remain
    upgrade(engine)
    expected, got = _both_ways(engine, ids)
    _assert_same(expected, got)
    assert any(expected.values[k].any() for k in RULESET.features if k.startswith("condition"))


def test_erasing_a_patient_removes_their_packs_with_their_rows(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    ids = _store(engine, [patient(**_dense_profile(random.Random(3))) for _ in range(2)])
    container = make_container(database_url, tmp_path / "var")
    with container.uow() as uow:
        erase_patient(uow.session, patient_id=ids[0], vault=container.vault, audit=container.audit, now=NOW)
        uow.commit()
    container.dispose()
    with Session(engine) as session:
        packs = session.execute(select(ClinicalPackRow.patient_id)).scalars().all()
    assert ids[0] not in packs
    assert ids[1] in packs


def test_contexts_rebuilt_from_packs_explain_every_pair_as_the_stored_rows_do(engine: Engine) -> None:
    rng = random.Random(11)
    ids = _store(engine, [patient(**_dense_profile(rng)) for _ in range(400)])
    nudges = load_catalog(PACKAGE_ROOT / "data" / "catalog.yaml").nudges()
    with Session(engine) as session:
        stored = load_contexts(session, ids)
        rebuilt = RowContexts(load_clinical_rows(session, ids))
    fired = 0
    for i, pid in enumerate(ids):
        ctx = rebuilt(i)
        for n in nudges:
            expected = decide(stored[pid], n, RULESET, AS_OF).as_json()
            assert decide(ctx, n, RULESET, AS_OF).as_json() == expected, (i, n.id)
            fired += bool(expected["fired"])
    assert fired > len(ids)  # the cohort exercises the rules, not only empty answers


def test_segment_flags_read_from_packs_equal_the_flags_read_from_contexts(engine: Engine) -> None:
    rng = random.Random(5)
    profiles_ = []
    for _ in range(600):
        profile = _dense_profile(rng)
        for code in rng.sample(FLAG_CODES, rng.choice([0, 1])):
            profile["conditions"].append({"system": "ICD-10-CM", "code": code, "status": rng.choice(STATUSES),
                                          "onset": _edge_time(rng)})
        for _ in range(rng.choice([0, 1, 2])):
            profile["observations"].append({"loinc": "44261-6", "unit": "{score}", "value": rng.randint(0, 27),
                                            "effective": _edge_time(rng)})
        profiles_.append(_untied(profile))
    ids = _store(engine, [patient(**p) for p in profiles_])
    with Session(engine) as session:
        stored = load_contexts(session, ids)
        got = segment_flags_from_rows(load_clinical_rows(session, ids), AS_OF)
    expected = segment_flags([stored[pid] for pid in ids], AS_OF)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        assert expected[name].any(), name


def test_the_build_explains_each_flagged_pair_with_the_full_per_request_decision(engine: Engine) -> None:
    """The build re-reads only the rules its batch evaluator fired; that is every rule that fires."""
    rng = random.Random(13)
    ids = _store(engine, [patient(**_dense_profile(rng)) for _ in range(300)])
    nudges = load_catalog(PACKAGE_ROOT / "data" / "catalog.yaml").nudges()
    with Session(engine) as session:
        stored = load_contexts(session, ids)
        guard = ShardGuardrails(RULESET, load_clinical_rows(session, ids), nudges,
                                NudgeColumns.from_nudges(nudges, RULESET), as_of=AS_OF)
    flagged = 0
    for i, pid in enumerate(ids):
        for j, n in enumerate(nudges):
            full = decide(stored[pid], n, RULESET, AS_OF)
            if not guard.levels[i, j]:
                assert full.decision is Outcome.DELIVER and not full.caution, (i, n.id)
                continue
            flagged += 1
            assert guard.explain(i, j).as_json() == full.as_json(), (i, n.id)
            assert [e["rule"] for e in guard.evidence(i, j)] == [f.rule for f in full.fired]
    assert flagged > len(ids)
