"""Clinician accounts: argon2id hashes, lock-out after five failures, unlock, the demo account."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from clinical_review import ensure_demo_clinician
from clinical_review.accounts import MAX_FAILURES, Clinician, ClinicianAccounts, LoginFailure
from nudge_engine.adapters.orm import ClinicianAccountRow
from nudge_engine.bootstrap import Container
from nudge_engine.config import Settings
from nudge_engine.domain.errors import Conflict, InvalidInput
from nudge_engine.privacy.keys import ensure_dev_secrets
from tests.integration.review.kit import PASSWORD, Clock, audit_records


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    c = Container(ensure_dev_secrets(Settings(database_url=database_url, var_dir=tmp_path)), clock=Clock())
    yield c
    c.dispose()


@pytest.fixture
def accounts(container: Container) -> ClinicianAccounts:
    return ClinicianAccounts(uow_factory=container.uow, audit=container.audit, clock=container.clock)


def _clock(container: Container) -> Clock:
    assert isinstance(container.clock, Clock)
    return container.clock


def test_passwords_are_stored_as_argon2id_hashes_only(container: Container, accounts: ClinicianAccounts) -> None:
    accounts.create("dr-grace", PASSWORD)
    with container.uow() as uow:
        stored = uow.session.execute(select(ClinicianAccountRow.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert isinstance(accounts.authenticate("DR-Grace", PASSWORD), Clinician)


def test_a_username_is_taken_once_and_a_short_password_is_refused(accounts: ClinicianAccounts) -> None:
    accounts.create("dr-grace", PASSWORD)
    with pytest.raises(Conflict):
        accounts.create("dr-grace", PASSWORD)
    with pytest.raises(InvalidInput, match="password"):
        accounts.create("dr-ada", "short")


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(
    container: Container, accounts: ClinicianAccounts
) -> None:
    account_id = accounts.create("dr-grace", PASSWORD)
    outcomes = [accounts.authenticate("dr-grace", "wrong password!") for _ in range(MAX_FAILURES)]

    assert outcomes == [LoginFailure.WRONG_PASSWORD] * MAX_FAILURES
    assert accounts.authenticate("dr-grace", PASSWORD) is LoginFailure.LOCKED
    assert accounts.current(account_id) is None  # sessions end while locked
    _clock(container).advance(minutes=14)
    assert accounts.authenticate("dr-grace", PASSWORD) is LoginFailure.LOCKED
    _clock(container).advance(minutes=1)
    assert isinstance(accounts.authenticate("dr-grace", PASSWORD), Clinician)
    failed = audit_records(container, "login_failed")
    assert [r.details["reason"] for r in failed] == ["wrong_password"] * MAX_FAILURES + ["locked", "locked"]
    assert {r.actor_id for r in failed} == {account_id}
    assert all("dr-grace" not in repr(tuple(r)) for r in failed)


def test_unlock_lifts_a_lock_out(accounts: ClinicianAccounts) -> None:
    accounts.create("dr-grace", PASSWORD)
    for _ in range(MAX_FAILURES):
        accounts.authenticate("dr-grace", "wrong password!")
    accounts.unlock("dr-grace")
    assert isinstance(accounts.authenticate("dr-grace", PASSWORD), Clinician)


def test_an_unknown_username_fails_like_a_wrong_password(container: Container, accounts: ClinicianAccounts) -> None:
    assert accounts.authenticate("nobody", PASSWORD) is LoginFailure.UNKNOWN
    [record] = audit_records(container, "login_failed")
    assert record.actor_id is None and record.details["reason"] == "unknown_account"


def test_the_demo_clinician_gets_a_new_password_each_time(container: Container, accounts: ClinicianAccounts) -> None:
    user, first = ensure_demo_clinician(container)
    again, second = ensure_demo_clinician(container)

    assert user == again and first != second
    assert accounts.authenticate(user, first) is LoginFailure.WRONG_PASSWORD
    assert isinstance(accounts.authenticate(user, second), Clinician)
    with container.uow() as uow:
        assert uow.session.execute(select(ClinicianAccountRow.id)).all().__len__() == 1
