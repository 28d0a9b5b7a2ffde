"""The identifier store: envelope encryption of patient identifiers, blind index, erasure, rotation.

Each patient has a random 256-bit data key (DEK), stored only wrapped (AES-GCM) by the newest
key-encryption key (KEK) of the :class:`~nudge_engine.privacy.keys.Keyring`; the associated data
binds the wrapped key to the patient and the KEK version. A patient has two identifier rows, each a
JSON object encrypted with AES-GCM under the DEK with the row id (plus patient id and kind) as
associated data, so a ciphertext moved to another row does not decrypt: ``source_id`` (the patient
app's / FHIR id) and ``demographics`` (names, birth date, telecom, addresses, record numbers). Two
rows rather than one per kind keeps a 100,000-patient import to 200,000 small inserts.

The ``source_id`` row also carries ``lookup_hash``: HMAC-SHA256 under the index key, so the engine
can map the patient app's id to the surrogate id without storing that id in clear.

Erasure destroys the wrapped DEK and deletes the identifier rows: nothing left can be decrypted.
Rotation re-wraps DEKs under the newest KEK; identifier ciphertexts are untouched, so it is cheap
and readers keep working throughout (old KEKs stay in the keyring until rotation has finished).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from datetime import date, datetime
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from nudge_engine.adapters.bulk import chunked
from nudge_engine.adapters.orm import PatientIdentifierRow, PatientKeyRow, new_id
from nudge_engine.domain.context import PatientIdentifiers
from nudge_engine.domain.errors import Conflict, IntegrityError, InvalidInput
from nudge_engine.privacy.keys import KEY_BYTES, Keyring

NONCE_BYTES = 12
SOURCE_ID = "source_id"  # the row looked up through the blind index
DEMOGRAPHICS = "demographics"  # names, birth date, telecom, addresses, record numbers in one row

_KEYS = cast(Table, PatientKeyRow.__table__)
_IDENTIFIERS = cast(Table, PatientIdentifierRow.__table__)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


def _key_aad(patient_id: str, kek_version: str) -> bytes:
    return f"nudge-engine/patient-key|{patient_id}|{kek_version}".encode()


def _row_aad(row_id: str, patient_id: str, kind: str) -> bytes:
    return f"{row_id}|{patient_id}|{kind}".encode()


class IdentifierVault:
    """Encrypts, looks up, reveals, erases and re-keys patient identifiers."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def lookup_hash(self, source_id: str) -> str:
        """Keyed HMAC blind index of a source (patient-app / FHIR) patient id."""
        message = f"{SOURCE_ID}:{source_id}".encode()
        return hmac.new(self._keyring.index_key, message, hashlib.sha256).hexdigest()

    def find_patient(self, session: Session, source_id: str) -> str | None:
        return self.find_patients(session, [source_id]).get(source_id)

    def find_patients(self, session: Session, source_ids: Sequence[str]) -> dict[str, str]:
        """Source id -> surrogate patient id, for those that are enrolled (and not erased)."""
        by_hash = {self.lookup_hash(s): s for s in source_ids}
        found: dict[str, str] = {}
        for batch in chunked(list(by_hash)):
            rows = session.execute(
                select(PatientIdentifierRow.lookup_hash, PatientIdentifierRow.patient_id).where(
                    PatientIdentifierRow.kind == SOURCE_ID, PatientIdentifierRow.lookup_hash.in_(batch)
                )
            )
            for lookup, patient_id in rows:
                if lookup is not None:
                    found[by_hash[lookup]] = patient_id
        return found

    def enrol_many(self, session: Session, items: Sequence[tuple[str, PatientIdentifiers]], *, now: datetime) -> None:
        """Store (or replace, on re-import) the identifiers of each patient under a fresh data key."""
        patient_ids = [pid for pid, _ in items]
        if len(set(patient_ids)) != len(patient_ids):
            raise InvalidInput("enrol_many: a patient id appears twice in one batch")
        if len({ids.source_id for _, ids in items}) != len(items):
            raise InvalidInput("enrol_many: a source id appears twice in one batch")
        for batch in chunked(patient_ids):
            erased = session.scalars(
                select(PatientKeyRow.patient_id).where(
                    PatientKeyRow.patient_id.in_(batch), PatientKeyRow.destroyed_at.is_not(None)
                )
            ).first()
            if erased is not None:
                raise Conflict(f"patient {erased} was erased; its identifiers cannot be stored again")
            session.execute(delete(PatientIdentifierRow).where(PatientIdentifierRow.patient_id.in_(batch)))
            session.execute(delete(PatientKeyRow).where(PatientKeyRow.patient_id.in_(batch)))

        version, kek = self._keyring.newest
        key_rows: list[dict[str, object]] = []
        id_rows: list[dict[str, object]] = []
        for patient_id, identifiers in items:
            dek = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
            key_rows.append(
                {
                    "patient_id": patient_id,
                    "kek_version": version,
                    "wrapped_key": _seal(kek, dek, _key_aad(patient_id, version)),
                    "created_at": now,
                    "rotated_at": None,
                    "destroyed_at": None,
                }
            )
            aead = AESGCM(dek)
            mapping = identifiers.as_mapping()
            lookup = {SOURCE_ID: self.lookup_hash(identifiers.source_id), DEMOGRAPHICS: None}
            parts = {
                SOURCE_ID: {SOURCE_ID: mapping.pop(SOURCE_ID)},
                DEMOGRAPHICS: {k: v for k, v in mapping.items() if v},
            }
            for kind, values in parts.items():
                if not values:
                    continue
                row_id = new_id()
                nonce = os.urandom(NONCE_BYTES)
                plaintext = json.dumps(values, ensure_ascii=False).encode()
                aad = _row_aad(row_id, patient_id, kind)
                id_rows.append(
                    {
                        "id": row_id,
                        "patient_id": patient_id,
                        "kind": kind,
                        "lookup_hash": lookup[kind],
                        "ciphertext": nonce + aead.encrypt(nonce, plaintext, aad),
                        "created_at": now,
                    }
                )
        # Core inserts: one executemany each (ORM bulk inserts fall back to a statement per row here).
        if key_rows:
            session.execute(insert(_KEYS), key_rows)
        if id_rows:
            session.execute(insert(_IDENTIFIERS), id_rows)

    def _unwrap(self, patient_id: str, kek_version: str, wrapped: bytes) -> bytes:
        try:
            return _open(self._keyring.kek(kek_version), wrapped, _key_aad(patient_id, kek_version))
        except InvalidTag as exc:
            raise IntegrityError(f"patient {patient_id}: data key does not unwrap") from exc

    def reveal(self, session: Session, patient_id: str) -> PatientIdentifiers | None:
        """The decrypted identifiers, or None when the patient is unknown or erased."""
        key_row = session.execute(
            select(PatientKeyRow.kek_version, PatientKeyRow.wrapped_key).where(
                PatientKeyRow.patient_id == patient_id, PatientKeyRow.destroyed_at.is_(None)
            )
        ).first()
        if key_row is None or key_row.wrapped_key is None:
            return None
        dek = self._unwrap(patient_id, key_row.kek_version, key_row.wrapped_key)
        values: dict[str, list[str]] = {}
        rows = session.execute(
            select(PatientIdentifierRow.id, PatientIdentifierRow.kind, PatientIdentifierRow.ciphertext).where(
                PatientIdentifierRow.patient_id == patient_id
            )
        )
        for row_id, kind, ciphertext in rows:
            try:
                values.update(json.loads(_open(dek, ciphertext, _row_aad(row_id, patient_id, kind))))
            except InvalidTag as exc:
                problem = f"patient {patient_id}: identifier row {row_id} does not decrypt"
                raise IntegrityError(problem) from exc
        if SOURCE_ID not in values:
            return None
        birth = values.get("birth_date") or []
        return PatientIdentifiers(
            source_id=values[SOURCE_ID][0],
            names=tuple(values.get("names", ())),
            birth_date=date.fromisoformat(birth[0]) if birth else None,
            telecom=tuple(values.get("telecom", ())),
            addresses=tuple(values.get("addresses", ())),
            record_numbers=tuple(values.get("record_numbers", ())),
        )

    def erase(self, session: Session, patient_id: str, *, now: datetime) -> None:
        """Destroy the patient's data key and delete the identifier ciphertexts (crypto-shredding)."""
        session.execute(
            update(PatientKeyRow)
            .where(PatientKeyRow.patient_id == patient_id)
            .values(wrapped_key=None, destroyed_at=now)
        )
        session.execute(delete(PatientIdentifierRow).where(PatientIdentifierRow.patient_id == patient_id))

    def rotate(self, session: Session, *, now: datetime, batch_size: int = 1000) -> int:
        """Re-wrap every live data key under the newest KEK; returns how many were re-wrapped."""
        version, kek = self._keyring.newest
        count = 0
        after = ""
        while True:
            rows = session.execute(
                select(PatientKeyRow.patient_id, PatientKeyRow.kek_version, PatientKeyRow.wrapped_key)
                .where(
                    PatientKeyRow.patient_id > after,
                    PatientKeyRow.wrapped_key.is_not(None),
                    PatientKeyRow.kek_version != version,
                    PatientKeyRow.destroyed_at.is_(None),
                )
                .order_by(PatientKeyRow.patient_id)
                .limit(batch_size)
            ).all()
            if not rows:
                return count
            updates = [
                {
                    "patient_id": pid,
                    "kek_version": version,
                    "wrapped_key": _seal(kek, self._unwrap(pid, old, wrapped), _key_aad(pid, version)),
                    "rotated_at": now,
                }
                for pid, old, wrapped in rows
                if wrapped is not None
            ]
            session.execute(update(PatientKeyRow), updates)
            count += len(updates)
            after = rows[-1].patient_id
