"""The clinician pages under ``/review/``: log-in, queue, item, decisions, bulk decisions, dashboard.

Server-rendered (Jinja2). Every page needs a logged-in clinician; every POST needs the CSRF token.
Forms work without JavaScript (POST, then 303 to the page); ``static/review.js`` swaps the page's
``<main>`` in place instead of reloading.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from clinical_review.accounts import LOCK_FOR, MAX_FAILURES, LoginFailure
from clinical_review.auth import LOGIN_COOKIE, SESSION_COOKIE, new_login_nonce
from clinical_review.chart import rule_chart
from clinical_review.model import MAX_SCOPE_DAYS, Actor, Decide, QueueQuery, ReviewStatus, Verdict
from clinical_review.routes.session import (
    PageSession,
    csrf_ok,
    current_session,
    form_fields,
    refresh,
    render,
    safe_next,
    to_login,
)
from clinical_review.wiring import ReviewContext, review_context
from nudge_engine.domain.errors import Conflict, InvalidInput, NotFound

router = APIRouter(prefix="/review", include_in_schema=False)
Review = Annotated[ReviewContext, Depends(review_context)]
Form = Annotated[dict[str, str], Depends(form_fields)]
SCOPE_CHOICES = (7, 30, MAX_SCOPE_DAYS)
STATUS_CHOICES = ("pending", "approved", "rejected", "expired", "all")
SORT_CHOICES = {"priority": "Priority, then due", "due": "Due first", "-created": "Newest", "created": "Oldest"}


def _page(ctx: ReviewContext, session: PageSession, name: str, status_code: int = 200, **values: Any) -> Response:
    values.setdefault("now", ctx.service.now())
    response = render(ctx, name, status_code, user=session.clinician, csrf=session.csrf, reasons=ctx.service.reasons,
                      **values)
    return refresh(response, ctx, session)


def _refused(ctx: ReviewContext, status_code: int, title: str, message: str) -> Response:
    return render(ctx, "error.html", status_code, title=title, message=message, user=None, csrf="")


def _csrf_refused(ctx: ReviewContext) -> Response:
    return _refused(ctx, 403, "Form refused",
                    "This form was not sent from this page or has expired. Go back, reload the page and try again.")


def _int(value: str | None, low: int, high: int) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if low <= number <= high else None


@router.get("")
def root() -> Response:
    return RedirectResponse("/review/", status_code=308)


@router.get("/login")
def login_page(request: Request, review: Review, next: str | None = None) -> Response:
    if current_session(request, review) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(review, safe_next(next))


def _login_form(review: ReviewContext, target: str, *, error: str | None = None, status_code: int = 200) -> Response:
    nonce = new_login_nonce()
    response = render(review, "login.html", status_code, user=None, csrf=review.signer.csrf_token("login", nonce),
                      next=target, error=error, max_failures=MAX_FAILURES, lock_minutes=int(LOCK_FOR.seconds / 60))
    response.set_cookie(LOGIN_COOKIE, nonce, **review.signer.policy.cookie_args(900))  # type: ignore[arg-type]
    return response


@router.post("/login")
def login(request: Request, review: Review, fields: Form) -> Response:
    if not csrf_ok(request, review, fields, None):
        return _csrf_refused(review)
    outcome = review.accounts.authenticate(fields.get("username", ""), fields.get("password", ""))
    target = safe_next(fields.get("next"))
    if isinstance(outcome, LoginFailure):
        return _login_form(review, target, status_code=401, error=(
            f"Log-in failed. Check the username and password. After {MAX_FAILURES} failed attempts an account "
            f"is locked for {int(LOCK_FOR.seconds / 60)} minutes."
        ))
    cookie = review.signer.issue(outcome.account_id, outcome.password_epoch, review.service.now())
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, **review.signer.policy.cookie_args(None))  # type: ignore[arg-type]
    response.delete_cookie(LOGIN_COOKIE, path="/review")
    return response


@router.post("/logout")
def logout(request: Request, review: Review, fields: Form) -> Response:
    session = current_session(request, review)
    if session is not None and not csrf_ok(request, review, fields, session):
        return _csrf_refused(review)
    response = RedirectResponse("/review/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/review")
    return response


@router.get("/")
def queue(
    *, request: Request, review: Review, status: str = "pending", rule: str = "", priority: str = "", age: str = "",
    sort: str = "priority", page: str = "1",
) -> Response:
    session = current_session(request, review)
    if session is None:
        return to_login(request)
    status = status if status in STATUS_CHOICES else "pending"
    rule = rule if rule in review.service.rules.ids() else ""
    query = QueueQuery(
        status=None if status == "all" else ReviewStatus(status), rule=rule or None,
        priority=_int(priority, 0, 9), older_than_hours=_int(age, 0, 87600),
        sort=sort if sort in SORT_CHOICES else "priority", page=_int(page, 1, 100000) or 1,
    )
    found = review.service.list_items(query)
    counts = review.service.counts()
    rule_ids = sorted(set(review.service.rules.ids()) | set(counts.pending_by_rule))
    return _page(review, session, "queue.html", page=found, query=query, counts=counts, rule_ids=rule_ids,
                 filters={"status": status, "rule": rule, "priority": priority if query.priority is not None else "",
                          "age": age if query.older_than_hours is not None else "", "sort": query.sort},
                 status_choices=STATUS_CHOICES, sort_choices=SORT_CHOICES, bulk=request.query_params.get("bulk"))


def _item_page(review: ReviewContext, session: PageSession, item_id: str, status_code: int = 200,
               **values: Any) -> Response:
    try:
        detail = review.service.item_detail(item_id)
    except NotFound:
        return _page(review, session, "error.html", 404, title="Not found", message="There is no such review item.")
    return _page(review, session, "item.html", status_code, detail=detail, rules=review.service.rules,
                 scope_choices=SCOPE_CHOICES, **values)


@router.get("/items/{item_id}")
def item(request: Request, review: Review, item_id: str, outcome: str = "") -> Response:
    session = current_session(request, review)
    if session is None:
        return to_login(request)
    return _item_page(review, session, item_id[:32], outcome=outcome if outcome in ("approved", "rejected") else "")


@router.post("/items/{item_id}/decision")
def decide(request: Request, review: Review, item_id: str, fields: Form) -> Response:
    session = current_session(request, review)
    if session is None:
        return to_login(request)
    if not csrf_ok(request, review, fields, session):
        return _csrf_refused(review)
    item_id = item_id[:32]
    try:
        verdict = Verdict(fields.get("verdict", ""))
        command = Decide(verdict, fields.get("reason_code", ""), fields.get("comment"),
                         _int(fields.get("scope_days"), 1, MAX_SCOPE_DAYS) if verdict is Verdict.APPROVE else None,
                         _int(fields.get("version"), 0, 1 << 30))
        review.service.decide(item_id, command, actor=Actor(session.clinician.account_id))
    except ValueError:
        return _item_page(review, session, item_id, 422, error="Choose approve or reject.")
    except InvalidInput as exc:
        return _item_page(review, session, item_id, 422, error=f"Not decided: {exc}")
    except Conflict as exc:
        return _item_page(review, session, item_id, 409, error=f"Not decided: {exc}.")
    except NotFound:
        return _page(review, session, "error.html", 404, title="Not found", message="There is no such review item.")
    return refresh(RedirectResponse(f"/review/items/{item_id}?outcome={verdict.status.value}", status_code=303),
                   review, session)


@router.post("/items/{item_id}/identifiers")
def identifiers(request: Request, review: Review, item_id: str, fields: Form) -> Response:
    session = current_session(request, review)
    if session is None:
        return to_login(request)
    if not csrf_ok(request, review, fields, session):
        return _csrf_refused(review)
    try:
        found = review.service.reveal_identifiers(item_id[:32], actor=Actor(session.clinician.account_id))
    except NotFound:
        return _page(review, session, "error.html", 404, title="Not found", message="There is no such review item.")
    return _item_page(review, session, item_id[:32], identifiers=found, revealed=True)


@router.post("/bulk")
def bulk(request: Request, review: Review, fields: Form) -> Response:
    session = current_session(request, review)
    if session is None:
        return to_login(request)
    if not csrf_ok(request, review, fields, session):
        return _csrf_refused(review)
    rule = fields.get("rule", "")
    back = f"/review/?rule={rule}" if rule in review.service.rules.ids() else "/review/"
    try:
        if rule not in review.service.rules.ids():
            raise InvalidInput("rule: choose a rule to decide by")
        if fields.get("confirm") != "yes":
            raise InvalidInput("confirm that you reviewed the items first")
        verdict = Verdict(fields.get("verdict", ""))
        result = review.service.decide_by_rule(
            rule, Decide(verdict, fields.get("reason_code", ""), fields.get("comment")),
            actor=Actor(session.clinician.account_id),
        )
    except (ValueError, InvalidInput) as exc:
        return _page(review, session, "error.html", 422, title="Not decided", message=str(exc), back=back)
    return _page(review, session, "bulk_done.html", result=result, rule=rule, verdict=verdict, back=back)


@router.get("/dashboard")
def dashboard(request: Request, review: Review) -> Response:
    session = current_session(request, review)
    if session is None:
        return to_login(request)
    board = review.service.dashboard()
    return _page(review, session, "dashboard.html", board=board, chart=rule_chart(board))
