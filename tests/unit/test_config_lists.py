"""A TOML list for a text setting (``[nats] servers = ["nats://a:4222", ...]``) is read as
the comma-separated text the environment variable takes (issue 18: it became the list's
repr, "invalid hostname in connect url")."""

from __future__ import annotations

import pytest

from bus.connection import server_list
from updraft.config import ConfigError, conf


@pytest.fixture
def home(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("UPDRAFT__") or name == "UPDRAFT_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("UPDRAFT_HOME", str(tmp_path))
    yield tmp_path
    monkeypatch.undo()
    conf.reload()


def test_nats_servers_as_a_toml_list(home):
    (home / "updraft.toml").write_text(
        '[nats]\nservers = ["nats://10.0.0.1:4222", "10.0.0.2:4222", " nats://c:4222 "]\n')
    conf.reload()
    assert conf.get("nats", "servers") == "nats://10.0.0.1:4222,10.0.0.2:4222,nats://c:4222"
    assert server_list() == ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "nats://c:4222"]


def test_nats_servers_as_text_still_works(home):
    (home / "updraft.toml").write_text('[nats]\nservers = "nats://a:4222, nats://b:4222"\n')
    conf.reload()
    assert server_list() == ["nats://a:4222", "nats://b:4222"]


def test_a_table_for_a_text_setting_is_refused(home):
    (home / "updraft.toml").write_text('[nats]\nservers = {a = 1}\n')
    with pytest.raises(ConfigError, match=r"\[nats\] servers: expected text or a list"):
        conf.reload()
