"""The review JSON API (contract §4): clinician role only, filters, paging, decisions, 409, error body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nudge_engine.entrypoints.api import create_app
from tests.integration.review.kit import World, items


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.container, token_cache_ttl=0), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def headers(clinician_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {clinician_token}"}


def _ids(answer: Any) -> list[str]:
    return [i["id"] for i in answer.json()["items"]]


def test_only_the_clinician_role_may_read_the_queue(client: TestClient, service_token: str) -> None:
    assert client.get("/v1/review/items").status_code == 401
    refused = client.get("/v1/review/items", headers={"Authorization": f"Bearer {service_token}"})
    assert refused.status_code == 403
    assert refused.json() == {"detail": [{"code": "forbidden", "msg": "this token's role may not call this route"}]}


def test_the_queue_lists_filters_sorts_and_pages(client: TestClient, headers: dict[str, str], world: World) -> None:
    pending = items(world.container, status="pending")
    rule = pending[0].rule_ids[0]

    everything = client.get("/v1/review/items", params={"per_page": 100, "sort": "created"}, headers=headers)
    by_rule = client.get("/v1/review/items", params={"rule": rule, "per_page": 100}, headers=headers)
    page_two = client.get("/v1/review/items", params={"per_page": 3, "page": 2, "sort": "created"}, headers=headers)

    assert everything.status_code == 200 and everything.json()["total"] == len(pending)
    assert set(_ids(by_rule)) == {i.id for i in pending if rule in i.rule_ids}
    assert _ids(page_two) == _ids(everything)[3:6]
    first = everything.json()["items"][0]
    assert {"patient_ref", "rule_ids", "fired", "due_at", "expires_at", "version", "overdue"} <= set(first)
    assert all(i["status"] == "pending" for i in everything.json()["items"])


def test_bad_filters_are_refused_with_the_field_named(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.get("/v1/review/items", params={"status": "maybe", "sort": "name"}, headers=headers)
    assert answer.status_code == 422
    assert {d["msg"].split(":")[0] for d in answer.json()["detail"]} == {"query.status", "query.sort"}


def test_a_decision_then_a_second_one_gets_409(client: TestClient, headers: dict[str, str], world: World) -> None:
    item = items(world.container, status="pending")[0]
    url = f"/v1/review/items/{item.id}/decision"

    approved = client.post(url, json={"decision": "approve", "reason_code": "risk-monitored", "scope_days": 7,
                                      "version": item.version}, headers=headers)
    again = client.post(url, json={"decision": "reject", "reason_code": "contraindicated"}, headers=headers)

    assert approved.status_code == 200
    body = approved.json()
    assert (body["item"]["status"], body["item"]["scope_days"], body["item"]["version"]) == ("approved", 7, 1)
    assert body["delivery_id"] and body["scope_id"]
    assert again.status_code == 409 and again.json()["detail"][0]["code"] == "conflict"
    assert items(world.container, id=item.id)[0].status == "approved"


def test_an_unknown_reason_code_or_item_is_refused(client: TestClient, headers: dict[str, str], world: World) -> None:
    item = items(world.container, status="pending")[0]
    wrong_reason = client.post(f"/v1/review/items/{item.id}/decision",
                               json={"decision": "reject", "reason_code": "clinically-appropriate"}, headers=headers)
    missing = client.post(f"/v1/review/items/{'0' * 32}/decision",
                          json={"decision": "reject", "reason_code": "contraindicated"}, headers=headers)
    scoped_reject = client.post(f"/v1/review/items/{item.id}/decision",
                                json={"decision": "reject", "reason_code": "contraindicated", "scope_days": 3},
                                headers=headers)

    assert (wrong_reason.status_code, missing.status_code, scoped_reject.status_code) == (422, 404, 422)
    assert "reason_code" in wrong_reason.json()["detail"][0]["msg"]
    assert items(world.container, id=item.id)[0].status == "pending"
