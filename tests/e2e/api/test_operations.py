"""Health, readiness, metrics, the one error body shape, body limits, request ids, and no identifiers in logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nudge_engine.bootstrap import Container
from nudge_engine.entrypoints.api import create_app
from tests.e2e.api.kit import UNSTABLE_ANGINA, WALK, WATER, bundle, condition, seed_ready, surrogate_of

Headers = dict[str, str]


def test_liveness_and_readiness_report_the_loaded_rule_set(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "database": "ok", "ruleset": "sha256:fake-ruleset"}


def test_without_a_valid_rule_set_the_api_is_not_ready(container: Container, tmp_path: Path) -> None:
    no_rules = Container(container.settings.model_copy(update={"rules_dir": tmp_path / "missing"}))
    with TestClient(create_app(no_rules)) as bare:
        res = bare.get("/readyz")
    assert res.status_code == 503
    assert res.json() == {"detail": [{"code": "ruleset_not_loaded", "msg": "no guardrail rule set is loaded"}]}


def test_metrics_count_serves_guardrail_outcomes_and_latency_by_route_template(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    enrol("app-bo")
    pid = surrogate_of(container, "app-bo")
    seed_ready(container, pid, WALK, score=0.9)
    seed_ready(container, pid, WATER, score=0.1)
    client.put("/v1/patients/app-bo/context", json=bundle("app-bo", condition(UNSTABLE_ANGINA)),
               headers=service_headers)
    client.get("/v1/patients/app-bo/next-nudge", headers=service_headers)

    text = client.get("/metrics").text

    assert 'nudge_nudges_served_total{category="hydration"} 1.0' in text
    assert 'nudge_guardrail_outcomes_total{decision="block",rule="EX-BLOCK",stage="context"} 1.0' in text
    assert 'route="/v1/patients/{patient_id}/next-nudge"' in text
    assert "nudge_review_queue_items" in text
    assert "app-bo" not in text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("GET", "/v1/patients/app-ada/next-nudge", 401, "unauthenticated"),
    ],
)
def test_every_error_has_the_one_body_shape(
    client: TestClient, method: str, path: str, status: int, code: str
) -> None:
    res = client.request(method, path)
    assert res.status_code == status
    assert res.headers["content-type"] == "application/json"
    body = res.json()
    assert list(body) == ["detail"] and [item["code"] for item in body["detail"]] == [code]
    assert all(set(item) == {"code", "msg"} for item in body["detail"])


def test_validation_errors_have_the_one_body_shape(client: TestClient, service_headers: Headers) -> None:
    res = client.post("/v1/patients/app-ada/events", json={"type": "opened"}, headers=service_headers)
    assert res.status_code == 422
    assert all(set(item) == {"code", "msg"} for item in res.json()["detail"])
    assert {item["code"] for item in res.json()["detail"]} == {"invalid_input"}


def test_a_body_over_the_limit_is_refused_with_413_by_its_declared_length_or_while_streaming(
    container: Container, service_headers: Headers
) -> None:
    from tests.e2e.api.kit import FakeGuardrails

    app = create_app(container, guardrails=FakeGuardrails(), token_cache_ttl=0, max_body_bytes=2048)
    big = json.dumps(bundle("app-ada", *[condition(f"{i}0000", rid=f"c{i}") for i in range(40)])).encode()
    with TestClient(app) as client:
        declared = client.put("/v1/patients/app-ada/context", content=big,
                              headers={**service_headers, "Content-Type": "application/fhir+json"})

        def chunks() -> object:
            yield from (big[i:i + 512] for i in range(0, len(big), 512))

        streamed = client.put("/v1/patients/app-ada/context", content=chunks(),  # type: ignore[arg-type]
                              headers={**service_headers, "Content-Type": "application/fhir+json"})
    assert declared.status_code == streamed.status_code == 413
    assert declared.json()["detail"][0]["code"] == streamed.json()["detail"][0]["code"] == "payload_too_large"


def test_every_answer_carries_a_request_id_and_a_plain_caller_id_is_kept(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "trace-1234-abcd"}).headers["x-request-id"] == (
        "trace-1234-abcd"
    )
    assert client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"] != "bad id!"


def test_the_patients_app_id_never_reaches_a_log_line(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    canary = "app-canary-7731"
    enrol(canary)
    seed_ready(container, surrogate_of(container, canary), WATER)
    client.get(f"/v1/patients/{canary}/next-nudge", headers=service_headers)
    client.post(f"/v1/patients/{canary}/events", json={"type": "liked"}, headers=service_headers)
    client.get(f"/v1/patients/{canary}/next-nudge")
    client.get(f"/v1/patients/{canary}/nowhere", headers=service_headers)

    out = capsys.readouterr()
    assert "request" in out.out + out.err
    assert canary not in out.out + out.err
    assert "Quillfeather" not in out.out + out.err


def test_the_openapi_document_lists_every_status_each_route_can_answer(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    ops = doc["paths"]
    assert set(ops["/v1/patients/{patient_id}/next-nudge"]["get"]["responses"]) >= {"200", "204", "401", "403",
                                                                                     "404", "422"}
    assert set(ops["/v1/patients/{patient_id}/events"]["post"]["responses"]) >= {"201", "401", "404", "409", "413",
                                                                                 "422"}
    put = ops["/v1/patients/{patient_id}/context"]["put"]
    assert set(put["responses"]) >= {"200", "201", "415", "422"}
    assert set(put["requestBody"]["content"]) == {"application/fhir+json", "application/json"}
    assert "HTTPValidationError" not in json.dumps(doc)
    assert "/bench" not in json.dumps(doc)


def test_a_serve_that_is_done_again_under_the_lock_counts_each_guardrail_outcome_once(
    client: TestClient, container: Container, service_headers: Headers, enrol: Callable[..., None]
) -> None:
    # built before the contraindication was known: the first pass, without locks, finds the walk blocked
    # and does the serve again under the lock to supersede it; only the committed pass is counted
    enrol("app-bo", condition(UNSTABLE_ANGINA))
    pid = surrogate_of(container, "app-bo")
    seed_ready(container, pid, WALK, score=0.9, context_version=0)
    seed_ready(container, pid, WATER, score=0.1, context_version=0)

    assert client.get("/v1/patients/app-bo/next-nudge", headers=service_headers).status_code == 200
    text = client.get("/metrics").text

    assert 'nudge_guardrail_outcomes_total{decision="block",rule="EX-BLOCK",stage="serve"} 1.0' in text
    assert 'nudge_guardrail_outcomes_total{decision="deliver",rule="",stage="serve"} 1.0' in text
    assert 'nudge_nudges_served_total{category="hydration"} 1.0' in text
