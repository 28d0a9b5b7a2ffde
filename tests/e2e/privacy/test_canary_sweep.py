"""Canary sweep: identifiers never leave the identifier store, whatever the life cycle does.

Synthea's bundles and patients carrying unique canary values for every HIPAA Safe Harbor identifier
category that FHIR can carry go through the whole life cycle: import, context over the API, build,
review and decide (with identifiers revealed to the clinician), serve, events, auditor reads,
exports in every format, erasure. Then every log line, a raw dump of every table outside the
identifier store, every auditor response and every export is searched for the canary values, as
written, with digits only and case folded. One hit fails the test.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from clinical_review.model import Actor, Decide, Verdict
from clinical_review.wiring import build_context
from nudge_engine.adapters.orm import Base, ReviewItemRow
from nudge_engine.audit.export import EventFilter, ExportFormat, export
from nudge_engine.entrypoints.api import create_app
from nudge_engine.logs import configure_logging
from nudge_engine.privacy.erasure import erase_patient
from nudge_engine.services.build.factory import build_cycle
from nudge_engine.services.importing import Importer, discover
from nudge_engine.services.tokens import Role, TokenService
from tests.support.paths import SYNTHEA
from tests.support.world import make_container

pytestmark = pytest.mark.skipif(not SYNTHEA.exists(), reason="shared Synthea data not present")

# One value per Safe Harbor category FHIR's Patient can carry (names, geography below the state,
# dates, phone, fax, e-mail, SSN, MRN, health-plan, account and licence numbers, vehicle and device
# ids, URLs, IP addresses). Ages over 89 are covered by the audit model's own tests.
CANARIES: dict[str, str] = {
    "given": "Quillibet", "family": "Zorwaldski", "maiden": "Vantrobbel",
    "street": "7781 Heronsgate Crescent", "city": "Pellmarsh", "postal": "80471",
    "birth": "1951-10-27", "phone": "555-0142-7781", "fax": "555-0199-3310", "email": "zorwaldski7781@canary.example",
    "ssn": "999-71-4052", "mrn": "MRN-CANARY-66120", "plan": "HPB-CANARY-55031", "account": "ACCT-CANARY-44019",
    "licence": "DL-CANARY-33087", "vehicle": "VIN-1HGCANARY7781", "device": "DEV-SN-CANARY-2291",
    "url": "https://zorwaldski7781.canary.example/me", "ip": "198.51.100.77",
}
APP_ID = "app-canary-7781"  # the patient app's own id is an identifier too


def _canary_patient(app_id: str) -> dict[str, Any]:
    c = CANARIES
    identifier = [
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": c["ssn"]},
        {"type": {"text": "MRN"}, "value": c["mrn"]},
        {"type": {"text": "health plan beneficiary"}, "value": c["plan"]},
        {"type": {"text": "account"}, "value": c["account"]},
        {"type": {"text": "driver's licence"}, "value": c["licence"]},
        {"type": {"text": "vehicle"}, "value": c["vehicle"]},
        {"type": {"text": "device"}, "value": c["device"]},
        {"type": {"text": "ip address"}, "value": c["ip"]},
    ]
    return {
        "resourceType": "Patient", "id": app_id, "gender": "female", "birthDate": c["birth"],
        "name": [{"given": [c["given"]], "family": c["family"]}],
        "telecom": [{"system": "phone", "value": c["phone"]}, {"system": "fax", "value": c["fax"]},
                    {"system": "email", "value": c["email"]}, {"system": "url", "value": c["url"]}],
        "address": [{"line": [c["street"]], "city": c["city"], "state": "CO", "postalCode": c["postal"]}],
        "identifier": identifier,
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                       "valueString": c["maiden"]}],
    }


def _bundle(app_id: str) -> dict[str, Any]:
    ref = {"reference": f"Patient/{app_id}"}
    resources = [
        _canary_patient(app_id),
        {"resourceType": "Condition", "id": "htn", "subject": ref, "clinicalStatus": {"coding": [{"code": "active"}]},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]}, "onsetDateTime": "2019-04-02"},
        {"resourceType": "Condition", "id": "t2d", "subject": ref, "clinicalStatus": {"coding": [{"code": "active"}]},
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
         "onsetDateTime": "2020-06-11"},
        # A questionnaire answer holding the address, as Synthea's PRAPARE does: never stored.
        {"resourceType": "Observation", "id": "sdoh", "status": "final", "subject": ref,
         "code": {"coding": [{"system": "http://loinc.org", "code": "56799-0"}]},
         "effectiveDateTime": "2026-11-01T10:00:00Z", "valueString": f"{CANARIES['street']}, {CANARIES['city']}"},
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def _hits(blob: str, where: str) -> list[str]:
    """Each canary as written (case folded), and its digits alone: as a whole number in the text, and,
    when long enough to be specific (10+ digits), anywhere in the text's digits run together."""
    folded = blob.casefold()
    # Surrogate ids, hashes and ciphertext are long hex runs: their digits are noise, not identifiers.
    digits = re.sub(r"\D", "", re.sub(r"[0-9a-f]{16,}", " ", folded))
    found: list[str] = []
    for name, value in CANARIES.items():
        only_digits = re.sub(r"\D", "", value)
        # An all-digit canary (a ZIP code) is only looked for as a whole number, below.
        checks = [] if value.isdigit() else [(value.casefold() in folded, value.casefold())]
        if len(only_digits) >= 5:
            match = re.search(rf"(?<![0-9a-z]){only_digits}(?![0-9a-z])", folded)
            context = folded[max(0, match.start() - 40): match.end() + 40] if match else ""
            checks.append((match is not None, f"{only_digits} near {context!r}"))
        if len(only_digits) >= 10:
            checks.append((only_digits in digits, f"{only_digits} in the digits"))
        found.extend(f"{where}: {name} ({form})" for hit, form in checks if hit)
    return found


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream, level="DEBUG")
    yield stream
    configure_logging()


def test_no_canary_identifier_appears_in_logs_tables_auditor_responses_or_exports(
    database_url: str, tmp_path: Path, logs: io.StringIO
) -> None:
    container = make_container(database_url, tmp_path / "var")
    importer = Importer(uow_factory=container.uow, vault=container.vault, audit=container.audit,
                        clock=container.clock)
    importer.import_units(discover([SYNTHEA / "fhir"]))
    tokens = TokenService(uow_factory=container.uow, audit=container.audit, clock=container.clock, cache_ttl=0)
    secrets = {role: tokens.create(role=role.value, name=f"{role.value} canary").secret for role in Role}
    service = {"Authorization": f"Bearer {secrets[Role.SERVICE]}"}
    auditor = {"Authorization": f"Bearer {secrets[Role.AUDITOR]}"}
    responses: list[str] = []
    with TestClient(create_app(container, token_cache_ttl=0), raise_server_exceptions=False) as client:
        for app_id in (APP_ID, f"{APP_ID}-b"):
            put = client.put(f"/v1/patients/{app_id}/context", json=_bundle(app_id), headers=service)
            assert put.status_code == 201, put.text
        build_cycle(container, worker="canary").run()

        review = build_context(container).service
        with container.uow() as uow:
            items = [i for i in uow.session.scalars(select(ReviewItemRow.id).where(ReviewItemRow.status == "pending"))]
        assert items, "the life cycle includes a clinician decision"
        clinician = Actor("0" * 32)
        revealed = review.reveal_identifiers(items[0], actor=clinician)  # shown to the clinician, audited
        assert revealed is not None
        review.decide(items[0], Decide(Verdict.APPROVE, "clinically-appropriate"), actor=clinician)

        served = client.get(f"/v1/patients/{APP_ID}/next-nudge", headers=service)
        assert served.status_code in (200, 204), served.text
        if served.status_code == 200:
            nudge_id = served.json()["nudge"]["id"]
            for kind in ("delivered", "opened", "completed"):
                event = client.post(f"/v1/patients/{APP_ID}/events", headers=service,
                                    json={"type": kind, "nudge_id": nudge_id, "occurred_at": "2026-11-30T14:58:00Z"})
                assert event.status_code in (200, 201), event.text
        client.post(f"/v1/patients/{APP_ID}/events", headers=service,
                    json={"type": "activity", "occurred_at": "2026-11-30T14:59:00Z", "properties": {"minutes": 20}})
        client.get("/v1/patients/no-such-patient/next-nudge", headers=service)  # a 404 is audited too

        with container.uow() as uow:
            erased = container.vault.find_patient(uow.session, f"{APP_ID}-b")
        assert erased is not None
        erase_patient_in(container, erased)

        for path in ("/v1/audit/events?limit=1000", "/v1/audit/verify", "/openapi.json"):
            response = client.get(path, headers=auditor)
            assert response.status_code == 200
            responses.append(response.text)

    exports = []
    for fmt in ExportFormat:
        out = io.StringIO()
        with container.uow() as uow:
            export(uow.session, EventFilter(), fmt, out)
        exports.append((fmt.value, out.getvalue()))
    with container.uow() as uow:
        assert container.audit.verify(uow.session).ok

    dump = io.StringIO()
    writer = csv.writer(dump)
    with container.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name == "patient_identifiers":
                continue
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                writer.writerow([v.hex() if isinstance(v, bytes | memoryview) else v for v in row])
    container.dispose()

    hits = _hits(logs.getvalue(), "log") + _hits(dump.getvalue(), "database")
    hits += [h for r in responses for h in _hits(r, "auditor response")]
    hits += [h for fmt, text_ in exports for h in _hits(text_, f"export {fmt}")]
    assert hits == []
    assert logs.getvalue().count("\n") > 10, "the life cycle logged"
    assert json.loads(responses[0])["records"], "the auditor saw the trail"


def erase_patient_in(container: Any, patient_id: str) -> None:
    with container.uow() as uow:
        erase_patient(uow.session, patient_id=patient_id, vault=container.vault, audit=container.audit,
                      now=container.clock())
        uow.commit()


def test_the_sweep_finds_canaries_written_plainly_with_digits_only_or_in_another_case() -> None:
    assert _hits("note: patient ZORWALDSKI called", "x")
    assert _hits("ssn 999714052 on file", "x")  # SSN without its dashes
    assert _hits("call (555) 0142 7781", "x")  # phone digits, other punctuation
    assert _hits("zip 80471, Pellmarsh", "x")
    assert _hits("id 5ec145c5469854a3d07c738a80471c6a and 2026-11-30T15:00:01.804712", "x") == []
