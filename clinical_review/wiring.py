"""Builds the review package's services once per app, from the app's container (lazily, on first use)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape

from clinical_review.accounts import ClinicianAccounts
from clinical_review.auth import SessionPolicy, SessionSigner, derive_key
from clinical_review.reasons import load_reasons
from clinical_review.rules import RuleLibrary
from clinical_review.service import ReviewService
from nudge_engine.bootstrap import Container

PACKAGE = Path(__file__).resolve().parent
_lock = threading.Lock()


@dataclass(frozen=True)
class ReviewContext:
    service: ReviewService
    accounts: ClinicianAccounts
    signer: SessionSigner
    templates: Environment


def cookie_secure(container: Container) -> bool:
    """``NUDGE_REVIEW_COOKIE_SECURE`` when the settings have it; otherwise on in production only."""
    configured = container.settings.review_cookie_secure
    return bool(configured) if configured is not None else container.settings.is_production


def build_context(container: Container, *, secure: bool | None = None) -> ReviewContext:
    from nudge_engine.guardrails.loader import load_ruleset
    from nudge_engine.privacy.keys import Keyring

    settings = container.settings
    ruleset = load_ruleset(settings.rules_dir, parameters={"legal_drinking_age": settings.legal_drinking_age})
    service = ReviewService(
        uow_factory=container.uow, audit=container.audit, vault=container.vault, clock=container.clock,
        ruleset=lambda: container.ruleset, nudges={n.id: n for n in container.catalog.nudges()},
        reasons=load_reasons(), rules=RuleLibrary.of(ruleset.rules),
    )
    accounts = ClinicianAccounts(uow_factory=container.uow, audit=container.audit, clock=container.clock)
    policy = SessionPolicy(secure=cookie_secure(container) if secure is None else secure)
    signer = SessionSigner(derive_key(Keyring.from_settings(settings).index_key), policy)
    templates = Environment(
        loader=FileSystemLoader(PACKAGE / "templates"), autoescape=select_autoescape(("html",)),
        trim_blocks=True, lstrip_blocks=True,
    )
    return ReviewContext(service, accounts, signer, templates)


def review_context(request: Request) -> ReviewContext:
    """The app's review context (``app.state.clinical_review``), built on first use."""
    state = request.app.state
    found: ReviewContext | None = getattr(state, "clinical_review", None)
    if found is None:
        with _lock:
            found = getattr(state, "clinical_review", None)
            if found is None:
                found = build_context(state.services.container)
                state.clinical_review = found
    return found
