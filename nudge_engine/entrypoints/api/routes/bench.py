"""Benchmark baseline (only mounted when ``NUDGE_BENCH_BARE=1``): one primary-key read and one small insert.

The least any audited serve can do on the same database, behind the same middleware and token
check; ``benchmarks/bench_api.py`` compares next-nudge against it. Never mounted in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from nudge_engine.adapters.orm import PatientEventRow, PatientRow, new_id
from nudge_engine.entrypoints.api.auth import Principal, Role, require_role
from nudge_engine.entrypoints.api.dependencies import ApiServices, get_services
from nudge_engine.entrypoints.api.errors import error_responses

router = APIRouter(prefix="/bench", tags=["benchmark"], include_in_schema=False)


@router.get("/bare/{surrogate_id}", status_code=204, responses=error_responses(401, 403, 404))
def bare(
    surrogate_id: Annotated[str, Path(max_length=32)],
    principal: Annotated[Principal, Depends(require_role(Role.SERVICE))],
    services: Annotated[ApiServices, Depends(get_services)],
) -> Response:
    with services.container.uow() as uow:
        patient = uow.session.get(PatientRow, surrogate_id)
        if patient is None:
            return Response(status_code=404)
        uow.session.add(
            PatientEventRow(
                id=new_id(), patient_id=patient.id, type="bench", occurred_at=datetime.now(UTC),
                received_at=datetime.now(UTC), properties={}, response={},
            )
        )
        uow.commit()
    return Response(status_code=204)
