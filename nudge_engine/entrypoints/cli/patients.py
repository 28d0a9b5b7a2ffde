"""``nudge-engine patients``: patient-level operations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nudge_engine.entrypoints.cli.output import console, fail_on_error, print_json
from nudge_engine.entrypoints.cli.runtime import open_container

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True)


@app.command("erase")
def erase_cmd(
    patient_id: str = typer.Argument(..., help="The patient's surrogate id (never a source identifier)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Right to erasure: destroy the patient's data key and clinical context; audited, trail still verifies."""
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.privacy.erasure import erase_patient

    with fail_on_error(), open_container() as container:
        trail = AuditTrail.from_settings(container.settings)
        with container.uow() as uow:
            erasure = erase_patient(
                uow.session, patient_id=patient_id, vault=container.vault, audit=trail, now=container.clock()
            )
            uow.commit()
    if as_json:
        print_json({"patient_id": erasure.patient_id, "removed": erasure.removed})
    else:
        removed = ", ".join(f"{n} {name}" for name, n in erasure.removed.items())
        console.print(f"patient {erasure.patient_id} erased: identifiers unrecoverable; removed {removed}")
