"""Log lines carry no identifiers: values of identifier fields are dropped, exceptions included."""

from __future__ import annotations

import io
import json

from nudge_engine.logs import bind_job, configure_logging, get_logger


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_identifier_fields_are_redacted_at_any_depth_and_every_line_has_the_job_id() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    with bind_job("import", "job-1"):
        get_logger("t").info(
            "imported", patient_name="Zebedee Quill", count=3,
            nested={"home_address": "77 Canary Wharf Rd", "items": [{"ssn": "999-88-7777"}], "rule": "EX-03"},
        )
    (line,) = _lines(out)
    assert line["job_id"] == "job-1"
    assert line["patient_name"] == "[redacted]"
    assert line["count"] == 3
    assert line["nested"] == {"home_address": "[redacted]", "items": [{"ssn": "[redacted]"}], "rule": "EX-03"}
    assert "Zebedee" not in out.getvalue() and "999-88" not in out.getvalue()


def test_patient_app_ids_in_paths_are_masked() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    get_logger("t").info("request", route="/v1/patients/mrn-55501/next-nudge", status=200)
    assert "mrn-55501" not in out.getvalue()
    assert _lines(out)[0]["route"] == "/v1/patients/{patient_id}/next-nudge"


def test_exception_tracebacks_carry_no_local_variables() -> None:
    out = io.StringIO()
    configure_logging(stream=out)

    def fails(secret_name: str) -> None:
        raise ValueError("boom")

    try:
        fails("Zebedee Quill")
    except ValueError:
        get_logger("t").exception("failed")
    assert "Zebedee" not in out.getvalue()
    assert "boom" in out.getvalue()
