from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from nudge_engine.config import Environment, Settings
from nudge_engine.domain.errors import ConfigurationError
from nudge_engine.privacy.keys import Keyring, ensure_dev_secrets, new_key_text, rotate_dev_master_key


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(var_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_keyring_keeps_master_keys_newest_first(tmp_path: Path) -> None:
    k2, k1 = new_key_text(), new_key_text()
    ring = Keyring.from_settings(_settings(tmp_path, master_keys=f"v2:{k2}, v1:{k1}", index_key=new_key_text()))
    assert [v for v, _ in ring.keks] == ["v2", "v1"]
    assert ring.newest == ("v2", base64.b64decode(k2))
    assert ring.kek("v1") == base64.b64decode(k1)


def test_keyring_never_shows_key_bytes_in_its_repr(tmp_path: Path) -> None:
    key = new_key_text()
    ring = Keyring.from_settings(_settings(tmp_path, master_keys=f"v1:{key}", index_key=new_key_text()))
    assert key not in repr(ring)
    assert "v1" in repr(ring)


@pytest.mark.parametrize(
    ("master_keys", "problem"),
    [
        ("v1", "version:base64key"),
        ("v1:not base64!", "not valid base64"),
        ("v1:" + base64.b64encode(b"short").decode(), "32 bytes"),
        ("v1:{k},v1:{k}", "appears twice"),
        (" , ", "no key given"),
    ],
)
def test_keyring_rejects_malformed_master_keys_naming_the_variable(
    tmp_path: Path, master_keys: str, problem: str
) -> None:
    settings = _settings(tmp_path, master_keys=master_keys.format(k=new_key_text()), index_key=new_key_text())
    with pytest.raises(ConfigurationError, match="NUDGE_MASTER_KEYS") as info:
        Keyring.from_settings(settings)
    assert problem in str(info.value)


def test_asking_for_a_kek_version_not_configured_names_the_version(tmp_path: Path) -> None:
    ring = Keyring.from_settings(_settings(tmp_path, master_keys=f"v1:{new_key_text()}", index_key=new_key_text()))
    with pytest.raises(ConfigurationError, match="'v0'"):
        ring.kek("v0")


def test_development_generates_missing_secrets_once_into_private_files(tmp_path: Path) -> None:
    first = ensure_dev_secrets(_settings(tmp_path))
    second = ensure_dev_secrets(_settings(tmp_path))
    assert first.master_keys and first.index_key and first.audit_signing_key
    assert (first.master_keys, first.index_key, first.audit_signing_key) == (
        second.master_keys,
        second.index_key,
        second.audit_signing_key,
    )
    for name in ("master_keys", "index_key", "audit_signing_key"):
        mode = stat.S_IMODE((tmp_path / "secrets" / name).stat().st_mode)
        assert mode == 0o600, name
    Keyring.from_settings(first)  # parses


def test_development_keeps_secrets_given_in_the_environment(tmp_path: Path) -> None:
    given = new_key_text()
    settings = ensure_dev_secrets(_settings(tmp_path, index_key=given))
    assert settings.index_key == given
    assert not (tmp_path / "secrets" / "index_key").exists()


@pytest.mark.parametrize(
    ("missing", "variable"),
    [("master_keys", "NUDGE_MASTER_KEYS"), ("index_key", "NUDGE_INDEX_KEY"),
     ("audit_signing_key", "NUDGE_AUDIT_SIGNING_KEY")],
)  # fmt: skip
def test_production_refuses_to_start_without_a_secret_and_names_it(tmp_path: Path, missing: str, variable: str) -> None:
    values: dict[str, object] = {
        "master_keys": f"v1:{new_key_text()}",
        "index_key": new_key_text(),
        "audit_signing_key": new_key_text(),
        "env": Environment.PRODUCTION,
    }
    values[missing] = None
    with pytest.raises(ConfigurationError, match=variable):
        ensure_dev_secrets(_settings(tmp_path, **values))
    assert not (tmp_path / "secrets").exists()


def test_dev_rotation_prepends_a_new_master_key_and_keeps_the_old_ones(tmp_path: Path) -> None:
    settings = ensure_dev_secrets(_settings(tmp_path))
    rotated = rotate_dev_master_key(settings)
    ring = Keyring.from_settings(rotated)
    assert [v for v, _ in ring.keks] == ["v2", "v1"]
    assert (tmp_path / "secrets" / "master_keys").read_text().strip() == rotated.master_keys
    assert stat.S_IMODE((tmp_path / "secrets" / "master_keys").stat().st_mode) == 0o600


def test_dev_rotation_leaves_operator_supplied_master_keys_alone(tmp_path: Path) -> None:
    ensure_dev_secrets(_settings(tmp_path))  # a generated file exists ...
    supplied = _settings(tmp_path, master_keys=f"v9:{new_key_text()}", index_key=new_key_text())
    assert rotate_dev_master_key(supplied) is supplied  # ... but the operator's keys win
