"""Benchmark baseline (only mounted when ``NUDGE_BENCH_BARE=1``): one primary-key read and one small insert (Core
statements built once and run on the transaction's connection, as the serve path runs its reads). The serve's
writes are tuned in ways this baseline does not copy, it being the plain way to do its two statements: on
PostgreSQL its claim, records and COMMIT go as one message on the driver's cursor (``audit.trail._send``), on
SQLite its claim and record run as driver SQL compiled once (``adapters.driver_statements``).

The least any audited serve can do on the same database, behind the same middleware and token
check, its work run where theirs runs (``ApiServices.run``: on the event loop on SQLite, in a worker
thread on PostgreSQL); ``benchmarks/bench_api.py`` compares next-nudge against it. Never mounted in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy import Table, bindparam, insert, select

from nudge_engine.adapters.orm import PatientEventRow, PatientRow, new_id
from nudge_engine.entrypoints.api.auth import Principal, Role, require_role
from nudge_engine.entrypoints.api.dependencies import ApiServices, get_services
from nudge_engine.entrypoints.api.errors import error_responses

_patients = cast("Table", PatientRow.__table__)
READ_PATIENT = select(_patients.c.id, _patients.c.context_version).where(_patients.c.id == bindparam("pid"))
INSERT_EVENT = insert(cast("Table", PatientEventRow.__table__))
router = APIRouter(prefix="/bench", tags=["benchmark"], include_in_schema=False)


@router.get("/bare/{surrogate_id}", status_code=204, responses=error_responses(401, 403, 404))
async def bare(
    surrogate_id: Annotated[str, Path(max_length=32)],
    principal: Annotated[Principal, Depends(require_role(Role.SERVICE))],
    services: Annotated[ApiServices, Depends(get_services)],
) -> Response:
    found = await services.run(partial(_read_and_insert, services, surrogate_id))
    return Response(status_code=204 if found else 404)


def _read_and_insert(services: ApiServices, surrogate_id: str) -> bool:
    """The work: run where the real routes run theirs (``ApiServices.run``)."""
    now = datetime.now(UTC)
    with services.container.uow() as uow:
        db = uow.session.connection()  # as the serve path runs its statements
        patient = db.execute(READ_PATIENT, {"pid": surrogate_id}).first()
        if patient is None:
            return False
        db.execute(
            INSERT_EVENT,
            {"id": new_id(), "patient_id": patient.id, "type": "bench", "occurred_at": now, "received_at": now,
             "properties": {}, "response": {}},
        )
        uow.commit()
    return True
