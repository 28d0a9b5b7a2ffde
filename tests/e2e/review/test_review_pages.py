"""The clinician pages in a real browser (Chromium) against a live server, on SQLite and PostgreSQL.

Covers the issue's check: log in, approve one item and reject another; the approved nudge is then
served by ``next-nudge`` and the rejected one never; two decisions at once give one decision and
one 409; the audit trail shows each step with its reason code and no identifiers.
"""

from __future__ import annotations

import threading
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from clinical_review.accounts import ClinicianAccounts
from nudge_engine.adapters.orm import PatientPreferenceRow, PatientRow, ReviewItemRow
from tests.integration.review.kit import PASSWORD, World, audit_records, items, ready_rows

pytestmark = pytest.mark.slow


def _log_in(page: Any, username: str = "dr-grace", password: str = PASSWORD) -> None:
    page.goto("/review/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def _servable(world: World, count: int) -> list[Any]:
    """Pending items of patients who opted out of nothing, are not snoozed, and whose local time is daytime now."""
    p = PatientPreferenceRow
    with world.container.uow() as uow:
        with_prefs = {pid for pid, everything, snoozed, categories in uow.session.execute(
            select(p.patient_id, p.opted_out_all, p.snoozed_until, p.opted_out_categories)) if everything or snoozed
            or categories}
        zones = {pid: tz for pid, tz in uow.session.execute(select(PatientRow.id, PatientRow.timezone))}
    now = world.clock()
    chosen: list[Any] = []
    for item in items(world.container, status="pending"):
        hour = now.astimezone(ZoneInfo(zones[item.patient_id] or "UTC")).hour
        if item.patient_id not in with_prefs and 9 <= hour < 20 and item.patient_id not in {
            c.patient_id for c in chosen
        }:
            chosen.append(item)
    assert len(chosen) >= count, "the synthetic cohort has too few daytime patients for this test"
    return chosen[:count]


def _app_id(world: World, patient_id: str) -> str:
    with world.container.uow() as uow:
        found = world.container.vault.reveal(uow.session, patient_id)
    assert found is not None
    return found.source_id


def _decide_in_browser(page: Any, item_id: str, verdict: str, reason: str) -> None:
    page.goto(f"/review/items/{item_id}")
    form = page.locator(f"form.{verdict}")
    form.get_by_label("Reason").select_option(reason)
    form.get_by_role("button", name=verdict.capitalize()).click()
    page.locator("#outcome, #decision-error").wait_for()


def test_a_clinician_logs_in_and_a_wrong_password_is_refused(page: Any, world: World, shot: Any) -> None:
    _log_in(page, password="not the password")
    assert "Log-in failed" in page.get_by_role("alert").inner_text()
    shot(page, "refused")

    _log_in(page)

    page.wait_for_url("**/review/")
    pending = len(items(world.container, status="pending"))
    assert page.locator("#count-pending").inner_text() == str(pending)
    assert page.locator("table.queue tbody tr").count() == min(pending, 25)
    shot(page, "queue")


def test_the_queue_filters_by_rule_using_the_labelled_controls(page: Any, world: World, shot: Any) -> None:
    pending = items(world.container, status="pending")
    rule = pending[0].rule_ids[0]
    expected = {i.id for i in pending if rule in i.rule_ids}
    _log_in(page)

    page.get_by_label("Rule").select_option(rule)
    page.get_by_role("button", name="Apply filters").click()

    page.wait_for_url(f"**rule={rule}**")
    shown = set(page.locator("table.queue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.item)"))
    assert shown == expected
    assert page.get_by_role("heading", name=f"Decide all {len(expected)} pending items flagged by {rule}").count() == 1
    shot(page, "filtered")


def test_approved_nudge_is_served_and_rejected_one_never_with_an_audited_trail(
    page: Any, world: World, base_url: str, service_token: str, shot: Any
) -> None:
    approve, reject = _servable(world, 2)
    _log_in(page)
    page.wait_for_url("**/review/")

    page.goto(f"/review/items/{approve.id}")
    page.get_by_role("button", name="Show patient identifiers").click()
    page.locator("#patient-name").wait_for()
    shot(page, "identifiers")
    _decide_in_browser(page, approve.id, "approve", "clinically-appropriate")
    assert page.locator("#outcome").inner_text() == "Item approved."
    shot(page, "approved")
    _decide_in_browser(page, reject.id, "reject", "contraindicated")
    assert page.locator("#item-status").inner_text() == "rejected"
    shot(page, "rejected")

    headers = {"Authorization": f"Bearer {service_token}"}
    with httpx.Client(base_url=base_url, headers=headers) as api:
        served = api.get(f"/v1/patients/{_app_id(world, approve.patient_id)}/next-nudge")
        assert served.status_code == 200, served.text
        assert served.json()["nudge"]["id"] == approve.nudge_id
        for _ in range(3):
            other = api.get(f"/v1/patients/{_app_id(world, reject.patient_id)}/next-nudge")
            assert other.status_code in (200, 204)
            assert other.status_code == 204 or other.json()["nudge"]["id"] != reject.nudge_id
    assert ready_rows(world.container, reject.id) == []

    trail = audit_records(world.container)
    steps = [(r.event_type, r.details.get("reason_code")) for r in trail
             if r.details.get("review_item") in (approve.id, reject.id) and r.event_type != "queued"]
    assert steps == [("identifiers_viewed", None), ("approved", "clinically-appropriate"),
                     ("rejected", "contraindicated")]
    [served_record] = [r for r in trail if r.event_type == "served" and r.nudge_id == approve.nudge_id
                       and r.patient_ref == approve.patient_id]
    assert served_record.details["delivery_id"] == ready_rows(world.container, approve.id)[0].id
    with world.container.uow() as uow:
        shown = world.container.vault.reveal(uow.session, approve.patient_id)
    assert shown is not None
    text = repr([tuple(r) for r in trail])
    assert all(value not in text for value in (*shown.names, shown.source_id, *shown.record_numbers))


def test_a_stale_page_deciding_an_already_decided_item_gets_409(
    page: Any, browser: Any, base_url: str, world: World, shot: Any
) -> None:
    item = items(world.container, status="pending")[0]
    _log_in(page)
    page.wait_for_url("**/review/")
    page.goto(f"/review/items/{item.id}")
    other = page.context.new_page()
    other.goto(f"/review/items/{item.id}")

    _decide_in_browser(page, item.id, "approve", "risk-monitored")
    stale = other.locator("form.reject")
    stale.get_by_label("Reason").select_option("contraindicated")
    with other.expect_response(lambda r: r.url.endswith("/decision")) as answer:
        stale.get_by_role("button", name="Reject").click()

    assert answer.value.status == 409
    assert "already decided" in other.get_by_role("alert").inner_text()
    assert other.locator("#item-status").inner_text() == "approved"
    shot(other, "conflict")
    [row] = items(world.container, id=item.id)
    assert (row.status, row.reason_code) == ("approved", "risk-monitored")


def test_two_decisions_sent_at_once_give_one_decision_and_one_409(
    base_url: str, world: World, clinician_token: str
) -> None:
    item = items(world.container, status="pending")[0]
    start = threading.Barrier(2)
    statuses: list[int] = []

    def send(decision: str, reason: str) -> None:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {clinician_token}"}) as api:
            start.wait()
            answer = api.post(f"/v1/review/items/{item.id}/decision",
                              json={"decision": decision, "reason_code": reason})
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=send, args=("approve", "clinically-appropriate")),
               threading.Thread(target=send, args=("reject", "contraindicated"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses) == [200, 409]
    decided = [r for r in audit_records(world.container, "approved", "rejected") if r.details["review_item"] == item.id]
    assert len(decided) == 1
    assert items(world.container, id=item.id)[0].version == 1


def test_an_expired_item_offers_no_decision_and_its_nudge_is_never_queued(
    page: Any, world: World, shot: Any
) -> None:
    item = items(world.container, status="pending")[0]
    world.clock.now = item.expires_at
    from clinical_review.wiring import build_context

    assert build_context(world.container, secure=False).service.expire_overdue() >= 1
    _log_in(page)
    page.wait_for_url("**/review/")

    page.get_by_label("Status").select_option("expired")
    page.get_by_role("button", name="Apply filters").click()
    page.locator(f"tr[data-item='{item.id}']").get_by_role("link").click()

    assert page.locator("#item-status").inner_text() == "expired"
    assert page.locator("form.approve, form.reject").count() == 0
    assert "never delivered" in page.locator("#decision").inner_text()
    shot(page, "expired")
    assert ready_rows(world.container, item.id) == []


def test_an_item_flagged_under_another_rule_set_says_so_above_the_loaded_rules(
    page: Any, world: World, shot: Any
) -> None:
    flagged, current = items(world.container, status="pending")[:2]
    with world.container.uow() as uow:  # as if queued before the loaded rule set was deployed
        uow.session.execute(update(ReviewItemRow).where(ReviewItemRow.id == flagged.id)
                            .values(ruleset_digest="sha256:the-rule-set-before-this-one"))
        uow.commit()
    _log_in(page)
    page.wait_for_url("**/review/")

    page.goto(f"/review/items/{flagged.id}")
    notice = page.locator("#ruleset-changed")
    assert "sha256:the-rule-set" in notice.inner_text()
    assert world.container.ruleset.digest[:19] in notice.inner_text()
    shot(page, "ruleset-changed")
    page.goto(f"/review/items/{current.id}")
    assert page.locator("#ruleset-changed").count() == 0


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(page: Any, world: World, shot: Any) -> None:
    item = items(world.container, status="pending")[0]
    _log_in(page)
    page.wait_for_url("**/review/")
    before = len(audit_records(world.container))

    forged = page.request.post(f"/review/items/{item.id}/decision",
                               form={"verdict": "approve", "reason_code": "clinically-appropriate"})
    wrong = page.request.post(f"/review/items/{item.id}/decision",
                              form={"verdict": "approve", "reason_code": "clinically-appropriate",
                                    "csrf_token": "forged"})
    page.goto(f"/review/items/{item.id}")
    token = page.locator("form.approve input[name=csrf_token]").get_attribute("value")
    cross_site = page.request.post(f"/review/items/{item.id}/decision",
                                   headers={"Origin": "https://evil.example"},
                                   form={"verdict": "approve", "reason_code": "clinically-appropriate",
                                         "csrf_token": token})

    assert (forged.status, wrong.status, cross_site.status) == (403, 403, 403)
    page.set_content(forged.text())
    shot(page, "refused")
    assert items(world.container, id=item.id)[0].status == "pending"
    assert len(audit_records(world.container)) == before


def test_five_failed_log_ins_lock_the_account(page: Any, world: World, accounts: ClinicianAccounts) -> None:
    for _ in range(5):
        _log_in(page, password="still not the password")
    _log_in(page)

    assert "Log-in failed" in page.get_by_role("alert").inner_text()
    assert page.url.split("?")[0].endswith("/review/login")
    accounts.unlock("dr-grace")
    _log_in(page)
    page.wait_for_url("**/review/")


def test_the_session_cookie_is_httponly_and_samesite_strict(page: Any, world: World) -> None:
    _log_in(page)
    page.wait_for_url("**/review/")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "nudge_review_session"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/review")
    assert page.evaluate("document.cookie") == ""


def test_the_dashboard_charts_decisions_per_rule(page: Any, world: World, shot: Any) -> None:
    item = items(world.container, status="pending")[0]
    _log_in(page)
    page.wait_for_url("**/review/")
    _decide_in_browser(page, item.id, "reject", "needs-assessment")

    page.get_by_role("link", name="Dashboard").click()

    assert page.locator("#queue-size").inner_text() == str(len(items(world.container, status="pending")))
    assert page.locator("svg.chart rect.rejected").count() == len(item.rule_ids)
    assert page.get_by_role("img", name="Decisions per rule per day").count() == 1
    shot(page, "dashboard")
