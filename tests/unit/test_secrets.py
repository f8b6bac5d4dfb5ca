"""Fernet encryption with generated and configured keys, rotation, and log masking."""

from __future__ import annotations

import json
import logging
import stat

import pytest

from updraft import secrets
from updraft.config import conf


def test_generated_key_is_private_and_reused(updraft_home):
    token = secrets.encrypt("hunter22")
    key_file = updraft_home / "fernet.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "hunter22" not in token
    first_key = key_file.read_text()
    assert secrets.decrypt(token) == "hunter22"
    secrets.encrypt("again")
    assert key_file.read_text() == first_key


def test_configured_key_wins_and_wrong_key_gives_precise_error(monkeypatch, updraft_home):
    key_a, key_b = secrets.generate_fernet_key(), secrets.generate_fernet_key()
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", key_a)
    conf.reload()
    token = secrets.encrypt("s3cret-value")
    assert not (updraft_home / "fernet.key").exists()
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", key_b)
    conf.reload()
    with pytest.raises(secrets.SecretsError) as info:
        secrets.decrypt(token, what="the password of connection pg")
    assert str(info.value).startswith(
        "cannot decrypt the password of connection pg: the fernet key does not match the one "
        "used to encrypt it")


def test_multiple_keys_decrypt_old_tokens_and_rotate(monkeypatch):
    old, new = secrets.generate_fernet_key(), secrets.generate_fernet_key()
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", old)
    conf.reload()
    token = secrets.encrypt("rotate-me")
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", f"{new}, {old}")
    conf.reload()
    assert secrets.decrypt(token) == "rotate-me"
    rotated = secrets.rotate(token)
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", new)
    conf.reload()
    assert secrets.decrypt(rotated) == "rotate-me"
    with pytest.raises(secrets.SecretsError):
        secrets.decrypt(token)


def test_invalid_key_is_reported(monkeypatch):
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", "not-a-key")
    conf.reload()
    with pytest.raises(secrets.SecretsError, match=r"\[core\] fernet_key: key #1 is not a valid"):
        secrets.encrypt("x")


@pytest.mark.parametrize("name, hidden", [
    ("password", True), ("db_PASSWORD", True), ("api_key", True), ("my_apikey", True),
    ("Authorization", True), ("access_token", True), ("private_key", True), ("passwd", True),
    ("client_secret", True), ("host", False), ("login", False), ("", False), (None, False),
])
def test_should_hide_value_for_key(name, hidden):
    assert secrets.should_hide_value_for_key(name) is hidden


def test_extra_sensitive_names_from_config(monkeypatch):
    assert not secrets.should_hide_value_for_key("pin_code")
    monkeypatch.setenv("UPDRAFT__CORE__SENSITIVE_VAR_CONN_NAMES", "pin, otp")
    conf.reload()
    assert secrets.should_hide_value_for_key("pin_code")
    assert secrets.should_hide_value_for_key("OTP")


def test_redact_hides_value_and_its_escaped_forms():
    secret = 'pa"ss\\word'
    secrets.mask_secret(secret)
    assert secrets.redact(f"login with {secret} now") == "login with *** now"
    assert secret not in secrets.redact(json.dumps({"p": secret}))
    assert secret not in secrets.redact(repr(secret))
    assert secrets.redact("nothing here") == "nothing here"


def test_short_values_and_non_sensitive_dict_keys_are_not_masked():
    secrets.mask_secret("ab")
    secrets.mask_secret({"host": "db.example.com", "password": "topsecret"})
    assert secrets.redact("ab at db.example.com with topsecret") == "ab at db.example.com with ***"


def test_redact_structures_hides_sensitive_keys_whole():
    out = secrets.redact({"user": "bob", "api_key": "k", "nested": [{"token": "t1"}]})
    assert out == {"user": "bob", "api_key": "***", "nested": [{"token": "***"}]}


def test_longer_secret_is_hidden_whole():
    secrets.mask_secret("abc")
    secrets.mask_secret("abcdef")
    assert secrets.redact("x abcdef y") == "x *** y"


def test_log_filter_redacts_message_args_and_traceback():
    secrets.mask_secret("hunter22")
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Collect()
    handler.addFilter(secrets.SecretsMasker())
    logger = logging.getLogger("test_secrets_masker")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("password is %s (%d tries)", "hunter22", 3)
        try:
            raise RuntimeError("failed with hunter22")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    assert records[0] == "password is *** (3 tries)"
    assert "hunter22" not in records[1]
    assert "RuntimeError: failed with ***" in records[1]


def test_multiline_secret_is_masked_line_by_line():
    secrets.mask_secret("-----BEGIN KEY-----\nMIIabcdef\n-----END KEY-----")
    assert secrets.redact("line: MIIabcdef") == "line: ***"


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, updraft.secrets; "
            "print(any(m.startswith(('cryptography', 'sqlalchemy')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
