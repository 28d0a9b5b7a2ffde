"""HTTP API load benchmark: wrk on loopback against ``nudge-engine serve``, on SQLite and PostgreSQL.

For each backend: a throw-away database (SQLite file; PostgreSQL started like the tests do, with
their settings: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off, the same for every
endpoint), a synthetic cohort (``--patients``, each enrolled through the identifier vault, with
``--ready`` queued nudges from the shipped catalog; on PostgreSQL then analyzed, see :func:`analyze`),
one service token, then ``serve`` (uvicorn, one worker per core, factory mode, ``NUDGE_BENCH_BARE=1``)
and, each for ``--duration`` seconds at
``--connections`` after a short untimed warm-up of the same endpoint:

- ``bare``: ``GET /bench/bare/{surrogate}``: one primary-key read and one small insert, same
  middleware and token check: the least any audited serve can do on this database;
- ``next-nudge``: ``GET /v1/patients/{id}/next-nudge`` over the cohort, round robin;
- ``events``: ``POST /v1/patients/{id}/events`` (activity events, a fresh Idempotency-Key each).

The catalog's burden limits are lifted (a copy of the catalog with high caps and no cooldowns,
via ``NUDGE_CATALOG``) and quiet hours are cleared in each patient's preferences, so that the
serve path (re-check, burden check, compare-and-set, audit) is measured rather than the empty
answer. Next-nudge must measure serves (200), not the cheaper 204 of an emptied queue: the queue is
put back untimed after the warm-up (``reset_queue``), and ``--patients`` x ``--ready`` (9,000 x 16 =
144,000 for a 60-second run on a machine serving up to 2,400 a second) must exceed the run's
requests; the table prints the answer mix and flags a run where more than 1% of next-nudge answers
were not serves.

Targets (issue 5): next-nudge at least 60% of bare's throughput, p99 under 50 ms at 16
connections, no errors over a 60-second run (``--duration 60``).

Reading the figures: each worker listens on its own ``SO_REUSEPORT`` socket, so the kernel spreads
wrk's 16 keep-alive connections over the workers (on one shared socket the first idle worker took
most of them, and the split changed an endpoint's req/s by half from one run to the next). The load
generator, both workers and the database share the machine's cores: anything else running there
shows in the figures, the p99 first.

    .venv/bin/python benchmarks/bench_api.py --duration 60 --patients 9000

``--rounds N`` runs each endpoint N times for ``--duration`` seconds, the endpoints taking turns on
the same server (bare, next-nudge, events, bare, ...), and pools each endpoint's rounds: requests over
the summed time, and p50/p99 of all its requests (merged from each round's percentiles). A slow
drift of a shared machine then falls on bare and next-nudge alike, and each round opens fresh
connections, so each gets a fresh split over the workers. ``--rounds 3 --duration 20`` still puts
60 seconds of load on each endpoint, in three runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nudge_engine.adapters.database import make_engine  # noqa: E402
from nudge_engine.adapters.migrations import upgrade  # noqa: E402
from nudge_engine.config import Settings  # noqa: E402
from tests.support.serving import free_port, running_serve  # noqa: E402

# Latency percentiles wrk reports for each run (every half percent, finer in the tail, with the fastest and
# slowest request as 0 and 100), so that the rounds of an endpoint can be merged into one distribution.
GRID = [p / 2 for p in range(1, 198)] + [99.0 + p / 100 for p in range(1, 100)]
LUA_COMMON = "GRID = {" + ", ".join(f"{p:g}" for p in GRID) + "}\n" + r"""
local counter = 0
local ids = {}
statuses = {}
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do table.insert(ids, line) end
  counter = tid * 7919
  statuses = {}
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("STATUS %d %d\n", k, v)) end
  io.write(string.format("PCT 0 %d\n", latency.min))
  for _, p in ipairs(GRID) do io.write(string.format("PCT %g %d\n", p, latency:percentile(p))) end
  io.write(string.format("PCT 100 %d\n", latency.max))
end
"""
LUA_REQUEST = {
    "bare": r"""
function request()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  return wrk.format("GET", "/bench/bare/" .. id, {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")})
end
""",
    "next-nudge": r"""
function request()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  return wrk.format("GET", "/v1/patients/" .. id .. "/next-nudge",
                    {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")})
end
""",
    "events": r"""
function request()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  local body = '{"type":"activity","occurred_at":"2026-01-01T10:00:00Z","properties":{"minutes":20}}'
  return wrk.format("POST", "/v1/patients/" .. id .. "/events",
                    {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
                     ["Content-Type"] = "application/json",
                     ["Idempotency-Key"] = "k-" .. tid .. "-" .. counter}, body)
end
""",
}


IDS_OF = {"bare": "surrogates", "next-nudge": "app_ids", "events": "app_ids"}
WARM_UP_S = 3


@dataclass
class Result:
    backend: str
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    statuses: dict[int, int]
    seconds: float = 0.0
    percentiles: list[tuple[float, float]] = field(default_factory=list)  # (percentile, ms), ascending
    rounds: int = 1


def merged(rounds: list[Result]) -> Result:
    """One endpoint's rounds as one run: counts and time summed, latency percentiles of the pooled requests.

    Each round's distribution is read off its percentile grid (linear between grid points) and the rounds
    are weighted by their requests, so the merged p99 is the latency 1% of all the requests exceeded.
    """
    if len(rounds) == 1:
        return rounds[0]
    first = rounds[0]
    requests = sum(r.requests for r in rounds)
    seconds = sum(r.seconds for r in rounds)
    statuses: dict[int, int] = {}
    for r in rounds:
        for code, n in r.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    grid = sorted({ms for r in rounds for _, ms in r.percentiles})

    def share_below(ms: float) -> float:
        return sum(r.requests * _interpolate(ms, [v for _, v in r.percentiles], [p for p, _ in r.percentiles])
                   for r in rounds) / max(requests, 1)

    pooled = [(share_below(ms), ms) for ms in grid]

    def quantile(p: float) -> float:
        return _interpolate(p, [s for s, _ in pooled], [ms for _, ms in pooled])

    return Result(first.backend, first.endpoint, requests / seconds, quantile(50.0), quantile(99.0), requests,
                  sum(r.errors for r in rounds), statuses, seconds, pooled, len(rounds))


def _interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    """y at x on the ascending points (xs, ys), linear between them and held flat beyond the ends."""
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            span = xs[i] - xs[i - 1]
            return ys[i] if span == 0 else ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / span
    return ys[-1]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str, backend: str, endpoint: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    statuses = {int(c): int(n) for c, n in re.findall(r"STATUS (\d+) (\d+)", out)}
    errors += sum(n for code, n in statuses.items() if code >= 400)
    percentiles = [(float(p), int(us) / 1000) for p, us in re.findall(r"PCT ([\d.]+) (\d+)", out)]
    return Result(backend, endpoint, rps, p50, p99, requests, errors, statuses, requests / rps if rps else 0.0,
                  percentiles)


def _bench_catalog(directory: Path) -> Path:
    """The shipped catalog with its burden limits lifted (serve path measured, not the empty answer)."""
    doc: dict[str, Any] = yaml.safe_load(Settings().catalog.read_text(encoding="utf-8"))
    doc["burden"].update(
        max_per_day=1_000_000, max_per_week=1_000_000, category_max_per_day=1_000_000,
        category_max_per_week=1_000_000, category_caps={}, default_cooldown_hours=0,
    )
    for nudge in doc["nudges"]:
        if "cooldown_hours" in nudge:
            nudge["cooldown_hours"] = 0
    path = directory / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def seed(
    database_url: str, var_dir: Path, catalog_path: Path, patients: int, ready: int
) -> tuple[str, list[str], list[str]]:
    """Migrate, enrol the cohort, queue ready nudges; returns (token, app ids, surrogate ids)."""
    from sqlalchemy import insert

    from nudge_engine.adapters.orm import PatientPreferenceRow, PatientRow, ReadyNudgeRow, new_id
    from nudge_engine.adapters.orm.patients import shard_key_of
    from nudge_engine.bootstrap import Container
    from nudge_engine.domain.context import PatientIdentifiers
    from nudge_engine.domain.nudge import guarded_digest
    from nudge_engine.personalization.catalog import load_catalog
    from nudge_engine.privacy.keys import ensure_dev_secrets
    from nudge_engine.services.tokens import TokenService

    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    settings = ensure_dev_secrets(Settings(database_url=database_url, var_dir=var_dir, catalog=catalog_path))
    container = Container(settings)
    catalog = load_catalog(catalog_path)
    now = datetime.now(UTC)
    # What a build would queue for these patients: no programme or segment targets, no category the
    # guardrails may hold for them, and valid now (a build never queues a nudge outside its validity
    # window; one queued anyway is superseded at serve time, and its serve runs twice).
    servable = [e.id for i, e in enumerate(catalog.entries)
                if e.category.value not in {"exercise", "medication", "fasting"} and not e.programme
                and not e.target_segments and catalog.valid_from_s[i] <= now.timestamp() < catalog.valid_until_s[i]]
    digest = container.ruleset.digest  # queued under the rule set the server loads, as a build would
    content = {n.id: guarded_digest(n) for n in catalog.nudges()}  # and on the content it serves
    app_ids = [f"bench-{i:06d}" for i in range(patients)]
    surrogates = [new_id() for _ in app_ids]
    with container.uow() as uow:
        s = uow.session
        s.execute(insert(PatientRow), [
            {"id": pid, "shard_key": shard_key_of(pid), "created_at": now, "birth_year": 1970, "birth_month": 6,
             "sex": "female", "timezone": "UTC", "context_version": 1, "context_updated_at": now}
            for pid in surrogates
        ])
        container.vault.enrol_many(
            s, [(pid, PatientIdentifiers(source_id=app)) for pid, app in zip(surrogates, app_ids, strict=True)],
            now=now,
        )
        s.execute(insert(PatientPreferenceRow), [
            {"patient_id": pid, "quiet_start": "00:00", "quiet_end": "00:00", "opted_out_categories": [],
             "opted_out_all": False, "updated_at": now}
            for pid in surrogates
        ])
        rows = [
            {"id": new_id(), "patient_id": pid, "nudge_id": servable[(i + k) % len(servable)], "status": "ready",
             "score": 1.0 - k / ready, "caution": [], "context_version": 1,
             "ruleset_digest": digest, "content_digest": content[servable[(i + k) % len(servable)]],
             "created_at": now, "expires_at": now + timedelta(days=2)}
            for i, pid in enumerate(surrogates) for k in range(ready)
        ]
        for start in range(0, len(rows), 5000):
            s.execute(insert(ReadyNudgeRow), rows[start:start + 5000])
        uow.commit()
    token = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock,
                         cache_ttl=0).create(role="service", name="bench").secret
    container.dispose()
    return token, app_ids, surrogates


def analyze(database_url: str) -> None:
    """PostgreSQL: gather the planner's statistics on the freshly seeded tables, as ``pgbench -i`` does after
    loading, and as autovacuum does within minutes on a database in service. Without them the planner takes
    each patient's queue for one row and joins the preferences once per queued row: the serve's read ran
    at 2.4 times the work (EXPLAIN ANALYZE: 0.21 against 0.09 ms, 60 buffer hits against 15). SQLite, which
    gathers none unless asked, is left as a deployment leaves it."""
    from sqlalchemy import text

    if not database_url.startswith("postgresql"):
        return
    engine = make_engine(database_url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def reset_queue(database_url: str) -> None:
    """Put every seeded nudge back in the queue (untimed, between phases): warm-up serves do not drain it."""
    from sqlalchemy import update

    from nudge_engine.adapters.orm import ReadyNudgeRow

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(ReadyNudgeRow).values(status="ready", served_at=None))
    finally:
        engine.dispose()


def run_wrk(base: str, endpoint: str, ids_file: Path, token: str, *, duration: int, connections: int,
            threads: int, workdir: Path) -> str:
    script = workdir / f"{endpoint}.lua"
    script.write_text(LUA_COMMON + LUA_REQUEST[endpoint], encoding="utf-8")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s",
           "-s", str(script), base, "--", str(ids_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "BENCH_TOKEN": token})
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    return done.stdout


def bench_backend(backend: str, database_url: str, args: argparse.Namespace, workdir: Path) -> list[Result]:
    var_dir = workdir / backend
    var_dir.mkdir()
    catalog = _bench_catalog(var_dir)
    t0 = time.perf_counter()
    token, app_ids, surrogates = seed(database_url, var_dir, catalog, args.patients, args.ready)
    analyze(database_url)
    print(f"[{backend}] seeded {len(app_ids)} patients x {args.ready} ready nudges in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    (var_dir / "app_ids").write_text("\n".join(app_ids) + "\n")
    (var_dir / "surrogates").write_text("\n".join(surrogates) + "\n")
    env = {**os.environ, "NUDGE_DATABASE_URL": database_url, "NUDGE_VAR_DIR": str(var_dir),
           "NUDGE_CATALOG": str(catalog), "NUDGE_BENCH_BARE": "1", "NUDGE_LOG_LEVEL": args.log_level}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if args.api_threads is not None:
        env["NUDGE_API_THREADS"] = str(args.api_threads)
    endpoints = args.endpoints.split(",")
    rounds: dict[str, list[Result]] = {endpoint: [] for endpoint in endpoints}
    with running_serve(env, port=free_port(), workers=args.workers, log=var_dir / "server.log") as base:
        for n in range(args.rounds):
            for endpoint in endpoints:
                ids = var_dir / IDS_OF[endpoint]
                if n == 0:
                    run_wrk(base, endpoint, ids, token, duration=WARM_UP_S, connections=args.connections,
                            threads=args.threads, workdir=var_dir)  # warm-up: connections, caches, pool
                    if endpoint == "next-nudge":
                        reset_queue(database_url)
                out = run_wrk(base, endpoint, ids, token, duration=args.duration,
                              connections=args.connections, threads=args.threads, workdir=var_dir)
                rounds[endpoint].append(parse_wrk(out, backend, endpoint))
                print(f"[{backend}] {endpoint}, round {n + 1} of {args.rounds}: {rounds[endpoint][-1].rps:.0f} req/s",
                      file=sys.stderr)
    return [merged(rounds[endpoint]) for endpoint in endpoints]


def table(results: list[Result], connections: int, duration: int, rounds: int = 1) -> str:
    per_endpoint = f"{duration}s per endpoint" if rounds == 1 else (
        f"{rounds} rounds of {duration}s per endpoint, taking turns; rates and percentiles over all rounds")
    lines = [
        f"wrk on loopback, {connections} connections, {per_endpoint}",
        f"{'backend':<11}{'endpoint':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'answers':>26}"
        f"{'vs bare':>9}{'targets':>20}",
    ]
    bare = {r.backend: r.rps for r in results if r.endpoint == "bare"}
    for r in results:
        ratio = r.rps / bare[r.backend] if bare.get(r.backend) else float("nan")
        shares = ", ".join(f"{code}:{n / max(r.requests, 1):.0%}" for code, n in sorted(r.statuses.items()))
        verdict = ""
        if r.endpoint == "next-nudge":
            ok = ratio >= 0.6 and r.p99_ms < 50 and r.errors == 0
            verdict = "met" if ok else "MISSED (>=60%, p99<50ms, 0 err)"
            if r.statuses.get(200, 0) < 0.99 * r.requests:
                verdict += " (<99% serves: raise --ready)"
        lines.append(
            f"{r.backend:<11}{r.endpoint:<12}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}"
            f"{shares:>26}{ratio:>9.0%}{verdict:>20}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint and round (issue target: 60)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="timed runs per endpoint, the endpoints taking turns (bare, next-nudge, events, bare, "
                             "...), so that a machine's drift falls on every endpoint alike; the table pools them")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn workers")
    parser.add_argument("--patients", type=int, default=2000,
                        help="cohort size (60-second runs: 9000; with --ready, enough for every request)")
    parser.add_argument("--ready", type=int, default=16,
                        help="ready nudges per patient: enough that next-nudge answers stay serves (200) for the "
                             "whole run (--patients x --ready must exceed the requests of the run)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--endpoints", default="bare,next-nudge,events", help="run in this order")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--api-threads", type=int, default=None,
                        help="NUDGE_API_THREADS for the server (PostgreSQL: service calls at once per worker; "
                             "default: the server's own, 2 for this machine's database)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    results: list[Result] = []
    workdir = Path(tempfile.mkdtemp(prefix="nudge-bench-api-"))
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                results += bench_backend("sqlite", f"sqlite:///{workdir / 'bench.db'}", args, workdir)
            elif backend == "postgresql":
                from tests.support.postgres import start_server

                try:
                    server = start_server()
                except FileNotFoundError as exc:
                    print(f"[postgresql] skipped: {exc}", file=sys.stderr)
                    continue
                try:
                    admin = make_engine(server.admin_url)
                    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                        from sqlalchemy import text

                        conn.execute(text("CREATE DATABASE bench"))
                    admin.dispose()
                    results += bench_backend("postgresql", server.url("bench"), args, workdir)
                finally:
                    server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(results, args.connections, args.duration, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
