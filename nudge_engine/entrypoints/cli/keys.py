"""``nudge-engine keys``: the keys that encrypt patient identifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nudge_engine.entrypoints.cli.output import console, fail_on_error, print_json
from nudge_engine.entrypoints.cli.runtime import open_container

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True)


@app.command("rotate")
def rotate_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")) -> None:
    """Re-wrap every patient data key under the newest key-encryption key (KEK).

    Production: put the new key first in NUDGE_MASTER_KEYS (keep the old ones) on every process,
    then run this. Development: a new KEK is generated into var/secrets first. Readers keep working
    throughout; once this has run, old KEKs can be removed from NUDGE_MASTER_KEYS.
    """
    from nudge_engine.audit.model import ActorRole, AuditEvent, EventType
    from nudge_engine.audit.trail import AuditTrail
    from nudge_engine.privacy.keys import Keyring, rotate_dev_master_key
    from nudge_engine.privacy.vault import IdentifierVault

    with fail_on_error(), open_container() as container:
        settings = rotate_dev_master_key(container.settings)
        keyring = Keyring.from_settings(settings)
        version = keyring.newest[0]
        vault, trail, now = IdentifierVault(keyring), AuditTrail.from_settings(settings), container.clock()
        with container.uow() as uow:
            count = vault.rotate(uow.session, now=now)
            event = AuditEvent(
                event_type=EventType.KEY_ROTATED,
                actor_role=ActorRole.ADMIN,
                details={"kek_version": version, "keys_rewrapped": count},
            )
            trail.append(uow.session, [event], now=now)
            uow.commit()
    if as_json:
        print_json({"kek_version": version, "keys_rewrapped": count})
    else:
        console.print(f"re-wrapped {count} patient data keys under key-encryption key {version}")
