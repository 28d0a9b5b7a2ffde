"""The build cycle: idempotent, resumable after a crash, shared by concurrent workers, fully audited."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nudge_engine.adapters.orm import (
    AuditRecordRow,
    BuildCycleRow,
    BuildShardRow,
    PatientDecisionRow,
    PatientRow,
    ReadyNudgeRow,
    ReviewItemRow,
)
from nudge_engine.bootstrap import Container
from nudge_engine.domain.nudge import guarded_digest
from nudge_engine.services.build.cycle import BuildOptions
from nudge_engine.services.build.factory import build_cycle
from tests.support.cli import run_cli
from tests.support.paths import PROJECT
from tests.support.world import make_container, seed_cohort

PATIENTS = 120


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[Container]:
    container = make_container(database_url, tmp_path / "var")
    seed_cohort(container, PATIENTS)
    yield container
    container.dispose()


def _ready(container: Container) -> set[tuple[str, str, str]]:
    with container.uow() as uow:
        rows = uow.session.execute(
            select(ReadyNudgeRow.id, ReadyNudgeRow.patient_id, ReadyNudgeRow.nudge_id)
            .where(ReadyNudgeRow.status == "ready")
        ).all()
    return {(r.id, r.patient_id, r.nudge_id) for r in rows}


def _decisions_per_patient(container: Container, cycle_id: str) -> dict[str, int]:
    with container.uow() as uow:
        rows = uow.session.execute(
            select(PatientDecisionRow.patient_id, func.count()).where(PatientDecisionRow.cycle_id == cycle_id)
            .group_by(PatientDecisionRow.patient_id)
        ).all()
    return {pid: int(n) for pid, n in rows}


def _living_patients(container: Container) -> set[str]:
    with container.uow() as uow:
        return set(uow.session.scalars(select(PatientRow.id).where(PatientRow.deceased.is_(False))))


def test_running_the_build_twice_leaves_the_ready_queue_unchanged(world: Container) -> None:
    first = build_cycle(world, worker="t").run()
    assert first.finished and first.ready_inserted > 0
    before = _ready(world)
    second = build_cycle(world, worker="t").run()
    assert second.finished and second.cycle_id != first.cycle_id
    assert second.ready_inserted == 0 and second.ready_superseded == 0
    assert _ready(world) == before
    pairs = [(p, n) for _, p, n in before]
    assert len(pairs) == len(set(pairs))


def test_each_queued_nudge_records_the_catalog_content_its_decision_read(world: Container) -> None:
    build_cycle(world, worker="t").run()

    with world.uow() as uow:
        queued = uow.session.execute(select(ReadyNudgeRow.nudge_id, ReadyNudgeRow.content_digest)).all()
    catalog = {n.id: n for n in world.catalog.nudges()}
    assert queued
    assert all(digest == guarded_digest(catalog[nudge_id]) for nudge_id, digest in queued)


def test_every_patient_decision_has_one_audit_record_and_flagged_nudges_carry_rules_and_evidence(
    world: Container,
) -> None:
    summary = build_cycle(world, worker="t").run()
    with world.uow() as uow:
        built = uow.session.scalar(
            select(func.count()).select_from(AuditRecordRow).where(AuditRecordRow.event_type == "built")
        )
        decisions = [
            (d.review, d.blocked, d.ruleset_digest) for d in uow.session.scalars(select(PatientDecisionRow))
        ]
        items = [(i.rule_ids, i.fired, i.ruleset_digest) for i in uow.session.scalars(select(ReviewItemRow))]
        result = world.audit.verify(uow.session)
    assert built == summary.patients == len(decisions) == len(_living_patients(world))
    flagged = [f for review, blocked, _ in decisions for f in (*review, *blocked)]
    assert flagged, "the synthetic cohort should give the guardrails work"
    for entry in flagged:
        assert entry["fired"] and all(f["rule"] and f["evidence"] is not None for f in entry["fired"])
    assert all(digest.startswith("sha256:") for _, _, digest in decisions)
    assert items
    for rule_ids, fired, digest in items:
        assert rule_ids and fired and digest.startswith("sha256:")
    assert result.ok, result.summary()


def test_a_failure_inside_a_shard_stores_nothing_of_it_and_the_next_run_finishes_the_cycle(
    world: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nudge_engine.services.build.cycle as cycle_module

    real_write = cycle_module.write_outcomes
    calls = {"n": 0}

    def failing_second_shard(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cycle_module, "write_outcomes", failing_second_shard)
    options = BuildOptions(shard_size=40)
    with pytest.raises(RuntimeError, match="disk full"):
        build_cycle(world, worker="crashes", options=options).run()
    monkeypatch.setattr(cycle_module, "write_outcomes", real_write)

    resumed = build_cycle(world, worker="restarted", options=options).run()
    assert resumed.resumed and resumed.finished
    per_patient = _decisions_per_patient(world, resumed.cycle_id)
    assert set(per_patient) == _living_patients(world)
    assert set(per_patient.values()) == {1}


_WORKER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from tests.support.world import make_container
    from nudge_engine.services.build.cycle import BuildOptions
    from nudge_engine.services.build.factory import build_cycle
    import nudge_engine.services.build.cycle as cycle_module

    from nudge_engine.logs import configure_logging

    configure_logging(stream=sys.stderr)
    url, var, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    join = sys.argv[4] if len(sys.argv) > 4 else None
    container = make_container(url, var)
    if mode == "die-on-second-shard":
        real, calls = cycle_module.write_outcomes, {"n": 0}
        def write_then_die(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                os.kill(os.getpid(), signal.SIGKILL)   # killed mid-transaction, nothing flushed
            return real(*args, **kwargs)
        cycle_module.write_outcomes = write_then_die
    summary = build_cycle(container, worker=f"w{os.getpid()}", options=BuildOptions(shard_size=15)).run(join=join)
    print(summary.cycle_id, summary.shards_built, summary.patients)
    """
)


def _spawn(database_url: str, var_dir: Path, mode: str, join: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, database_url, str(var_dir), mode, *([join] if join else [])],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_a_build_process_killed_mid_cycle_is_finished_by_the_next_run_with_nothing_doubled(
    world: Container, database_url: str, tmp_path: Path
) -> None:
    killed = _spawn(database_url, tmp_path / "var", "die-on-second-shard")
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -9, err
    with world.uow() as uow:
        running = uow.session.scalars(select(BuildCycleRow.id).where(BuildCycleRow.status == "running")).all()
    assert len(running) == 1
    half_built = _decisions_per_patient(world, running[0])
    assert 0 < len(half_built) < len(_living_patients(world))

    again = _spawn(database_url, tmp_path / "var", "normal")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert out.split()[0] == running[0]
    per_patient = _decisions_per_patient(world, running[0])
    assert set(per_patient) == _living_patients(world)
    assert set(per_patient.values()) == {1}


def test_two_worker_processes_build_every_patient_exactly_once(
    world: Container, database_url: str, tmp_path: Path
) -> None:
    # Start the cycle first and have both workers join it, whichever starts first.
    cycle = build_cycle(world, worker="starter", options=BuildOptions(shard_size=15))
    cycle_id, _, _ = cycle.start_or_resume()
    workers = [_spawn(database_url, tmp_path / "var", "normal", join=cycle_id) for _ in range(2)]
    results = [w.communicate(timeout=300) for w in workers]
    for w, (_, err) in zip(workers, results, strict=True):
        assert w.returncode == 0, err
    shards = [int(out.split()[1]) for out, _ in results]
    assert sum(shards) == 8  # ceil(120 / 15) shards, each built by exactly one worker
    per_patient = _decisions_per_patient(world, cycle_id)
    assert set(per_patient) == _living_patients(world)
    assert set(per_patient.values()) == {1}
    with world.uow() as uow:
        status = uow.session.scalar(select(BuildCycleRow.status).where(BuildCycleRow.id == cycle_id))
    assert status == "finished"
    assert json.dumps(shards)  # both printed a summary


def test_two_worker_processes_from_the_cli_build_each_patient_once_and_choose_what_one_worker_would(
    world: Container, database_url: str, tmp_path: Path
) -> None:
    result = run_cli(["build", "--json", "--workers", "2", "--shard-size", "15"],
                     database_url=database_url, var_dir=tmp_path / "var")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["finished"] and doc["shards_built"] == 8 and doc["patients"] == len(_living_patients(world))
    per_patient = _decisions_per_patient(world, doc["cycle_id"])
    assert set(per_patient) == _living_patients(world) and set(per_patient.values()) == {1}
    with world.uow() as uow:
        built = uow.session.scalar(select(func.count()).select_from(AuditRecordRow)
                                   .where(AuditRecordRow.event_type == "built"))
    assert built == len(per_patient)
    ready = _ready(world)
    again = run_cli(["build", "--json", "--shard-size", "15"], database_url=database_url, var_dir=tmp_path / "var")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["finished"]
    assert _ready(world) == ready  # one worker, same inputs and day: the same queue


def test_several_workers_on_an_in_memory_database_are_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["build", "--workers", "2"], database_url="sqlite://", var_dir=tmp_path / "var")
    assert result.exit_code == 2
    assert "in-memory SQLite database cannot be shared" in result.output


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _wait_for(condition: Callable[[], bool], *, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


_SLOW_PARENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.support.world import make_container
    from nudge_engine.services.build.cycle import BuildCycle, BuildOptions
    from nudge_engine.services.build.parallel import build_with_workers

    real = BuildCycle._build_one_shard
    def slowly(self, *args):  # this process only: the spawned worker builds at full speed
        time.sleep(0.5)
        return real(self, *args)
    BuildCycle._build_one_shard = slowly
    container = make_container(sys.argv[1], Path(sys.argv[2]))
    build_with_workers(container, workers=2, worker="parent", options=BuildOptions(shard_size=1))
    """
)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads process children from /proc (Linux)")
def test_a_spawned_build_worker_stops_when_its_parent_is_killed_and_a_rerun_finishes(
    world: Container, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    parent = subprocess.Popen([sys.executable, "-c", _SLOW_PARENT, database_url, str(tmp_path / "var")], cwd=PROJECT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def worker_is_building() -> bool:
            """The spawned worker reserved a shard (SQLite: its pid is in the holder) or built one (PostgreSQL)."""
            children = {str(c) for pid in _children(parent.pid) for c in (pid, *_children(pid))}
            with world.uow() as uow:
                shards = uow.session.execute(select(BuildShardRow.status, BuildShardRow.claimed_by)).all()
            return any(by and ((status == "claimed" and by.split(":")[1] in children)
                               or (status == "done" and by.endswith("/1"))) for status, by in shards)

        assert _wait_for(worker_is_building), parent.communicate(timeout=60)
        workers = [c for pid in _children(parent.pid) for c in (pid, *_children(pid))]
        parent.send_signal(signal.SIGKILL)
        parent.communicate(timeout=60)
        assert _wait_for(lambda: all(_state(w) == "Z" for w in workers))  # exited (reaped or not)
    finally:
        if parent.poll() is None:
            parent.kill()
    with world.uow() as uow:
        open_shards = uow.session.scalar(select(func.count()).select_from(BuildShardRow)
                                         .where(BuildShardRow.status != "done"))
    assert open_shards  # the kill left the cycle unfinished
    again = run_cli(["build", "--json", "--shard-size", "1"], database_url=database_url, var_dir=tmp_path / "var")
    doc = json.loads(again.stdout)
    assert doc["resumed"] and doc["finished"]
    per_patient = _decisions_per_patient(world, doc["cycle_id"])
    assert set(per_patient) == _living_patients(world) and set(per_patient.values()) == {1}


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "Z"
