from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import PatientIdentifierRow, PatientKeyRow
from nudge_engine.config import Settings
from nudge_engine.domain.context import PatientIdentifiers
from nudge_engine.domain.errors import Conflict, IntegrityError
from nudge_engine.privacy.keys import Keyring, new_key_text
from nudge_engine.privacy.vault import IdentifierVault
from tests.integration.audit.conftest import NOW

ADA = PatientIdentifiers(
    source_id="synthea-7f3e",
    names=("Ada Quilliam",),
    birth_date=date(1931, 4, 2),
    telecom=("tel:555-0142", "ada.quilliam@example.org"),
    addresses=("12 Larkspur Lane, Bexley, OH 43209",),
    record_numbers=("MRN-0042", "SSN-999-12-3456"),
)
BEN = PatientIdentifiers(source_id="synthea-9a01", names=("Ben Ostrowski",))


def _enrol(vault: IdentifierVault, session: Session, items: list[tuple[str, PatientIdentifiers]]) -> None:
    vault.enrol_many(session, items, now=NOW)
    session.commit()


def test_enrolled_identifiers_are_revealed_exactly(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    ada, ben = make_patients(2)
    _enrol(vault, session, [(ada, ADA), (ben, BEN)])
    assert vault.reveal(session, ada) == ADA
    assert vault.reveal(session, ben) == BEN


def test_no_identifier_is_stored_in_clear(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    (ada,) = make_patients(1)
    _enrol(vault, session, [(ada, ADA)])
    blobs = b"".join(
        bytes(row.ciphertext) + (row.lookup_hash or "").encode()
        for row in session.scalars(select(PatientIdentifierRow))
    )
    for value in ("Quilliam", "555-0142", "Larkspur", "MRN-0042", "999-12-3456", "synthea-7f3e", "1931-04-02"):
        assert value.encode() not in blobs


def test_source_ids_map_to_surrogate_ids_through_the_blind_index(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    ada, ben = make_patients(2)
    _enrol(vault, session, [(ada, ADA), (ben, BEN)])
    assert vault.find_patient(session, "synthea-7f3e") == ada
    assert vault.find_patients(session, ["synthea-9a01", "synthea-7f3e", "unknown"]) == {
        "synthea-9a01": ben,
        "synthea-7f3e": ada,
    }
    assert vault.find_patient(session, "unknown") is None


def test_the_blind_index_depends_on_the_index_key(vault: IdentifierVault, key_settings: Settings) -> None:
    other = IdentifierVault(Keyring.from_settings(key_settings.model_copy(update={"index_key": new_key_text()})))
    assert vault.lookup_hash("synthea-7f3e") != other.lookup_hash("synthea-7f3e")
    assert vault.lookup_hash("synthea-7f3e") == vault.lookup_hash("synthea-7f3e")


def test_re_import_replaces_a_patients_identifiers(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    (ada,) = make_patients(1)
    _enrol(vault, session, [(ada, ADA)])
    moved = PatientIdentifiers(source_id=ADA.source_id, names=ADA.names, addresses=("3 Elm Row, Leeds",))
    _enrol(vault, session, [(ada, moved)])
    assert vault.reveal(session, ada) == moved
    assert session.scalar(select(PatientIdentifierRow.id).where(PatientIdentifierRow.kind == "source_id")) is not None
    assert len(session.scalars(select(PatientIdentifierRow).where(PatientIdentifierRow.patient_id == ada)).all()) == 2


def test_erasure_makes_identifiers_unrecoverable_even_with_every_key(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    ada, ben = make_patients(2)
    _enrol(vault, session, [(ada, ADA), (ben, BEN)])
    vault.erase(session, ada, now=NOW)
    session.commit()
    assert vault.reveal(session, ada) is None
    assert vault.find_patient(session, ADA.source_id) is None
    key = session.get(PatientKeyRow, ada)
    assert key is not None and key.wrapped_key is None and key.destroyed_at == NOW
    assert session.scalars(select(PatientIdentifierRow).where(PatientIdentifierRow.patient_id == ada)).all() == []
    assert vault.reveal(session, ben) == BEN  # others untouched


def test_an_erased_patient_cannot_be_enrolled_again_under_the_same_surrogate(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    (ada,) = make_patients(1)
    _enrol(vault, session, [(ada, ADA)])
    vault.erase(session, ada, now=NOW)
    session.commit()
    with pytest.raises(Conflict, match=ada):
        vault.enrol_many(session, [(ada, ADA)], now=NOW)


def test_rotation_re_wraps_every_data_key_under_the_newest_kek(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]], key_settings: Settings
) -> None:
    ids = make_patients(25)
    items = [(pid, PatientIdentifiers(source_id=f"src-{n}", names=(f"Person {n}",))) for n, pid in enumerate(ids)]
    _enrol(vault, session, items)
    vault.erase(session, ids[0], now=NOW)
    session.commit()
    rotated_settings = key_settings.model_copy(
        update={"master_keys": f"v2:{new_key_text()},{key_settings.master_keys}"}
    )
    rotated = IdentifierVault(Keyring.from_settings(rotated_settings))
    assert rotated.rotate(session, now=NOW, batch_size=7) == 24
    session.commit()
    assert set(session.scalars(select(PatientKeyRow.kek_version).where(PatientKeyRow.wrapped_key.is_not(None)))) == {
        "v2"
    }
    assert rotated.rotate(session, now=NOW) == 0  # nothing left to do
    # The old KEK can now be retired: a keyring holding only v2 reads everything.
    only_v2 = rotated_settings.model_copy(update={"master_keys": rotated_settings.master_keys.split(",")[0]})  # type: ignore[union-attr]
    fresh = IdentifierVault(Keyring.from_settings(only_v2))
    assert fresh.reveal(session, ids[5]) == items[5][1]


def test_a_ciphertext_moved_to_another_patient_does_not_decrypt(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    ada, ben = make_patients(2)
    _enrol(vault, session, [(ada, ADA), (ben, BEN)])
    ada_key = session.execute(select(PatientKeyRow.wrapped_key).where(PatientKeyRow.patient_id == ada)).scalar_one()
    session.execute(update(PatientKeyRow).where(PatientKeyRow.patient_id == ben).values(wrapped_key=ada_key))
    session.commit()
    with pytest.raises(IntegrityError, match=ben):
        vault.reveal(session, ben)


def test_enrolment_rolls_back_with_the_callers_transaction(
    vault: IdentifierVault, session: Session, make_patients: Callable[[int], list[str]]
) -> None:
    (ada,) = make_patients(1)
    vault.enrol_many(session, [(ada, ADA)], now=NOW)
    session.rollback()
    assert session.execute(text("SELECT count(*) FROM patient_identifiers")).scalar_one() == 0
    assert vault.reveal(session, ada) is None
