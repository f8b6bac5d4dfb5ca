"""Unknown settings are warned about once, with where they came from and the closest known
setting, and still readable by code that asks for them (issue 15)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from updraft import config
from updraft.config import DEFAULTS, closest_setting, conf

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def fresh(monkeypatch, tmp_path, caplog):
    """An empty UPDRAFT_HOME, no UPDRAFT__ variables, nothing warned yet."""
    import os

    for name in list(os.environ):
        if name.startswith("UPDRAFT__") or name == "UPDRAFT_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("UPDRAFT_HOME", str(tmp_path))
    monkeypatch.setattr(config, "_warned", set())
    caplog.set_level(logging.WARNING, logger="updraft.config")
    yield tmp_path
    monkeypatch.undo()
    conf.reload()


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "updraft.config"]


def test_an_unknown_variable_is_warned_once_and_still_read(fresh, monkeypatch, caplog):
    monkeypatch.setenv("UPDRAFT__NATS__URL", "nats://x:4222")
    conf.reload()
    conf.reload()
    assert warnings(caplog) == [
        ("Unknown setting [nats] url in UPDRAFT__NATS__URL: no part of Updraft reads it; did "
        "you mean [nats] servers (UPDRAFT__NATS__SERVERS)?")]
    assert conf.get("nats", "url") == "nats://x:4222"


def test_unknown_keys_and_sections_in_the_file_name_the_file(fresh, caplog):
    path = fresh / "updraft.toml"
    path.write_text('[core]\nexecuter = "local"\nsql_alchemy_conn = "sqlite://"\n'
                    '[webserver]\nweb_server_port = 9090\n[my_team]\nbucket = "b"\n'
                    '[nats]\nservers = "nats://n:4222"\n')
    conf.reload()
    assert warnings(caplog) == [
        (f"Unknown setting [core] executer in {path}: no part of Updraft reads it; did you mean "
        "[core] executor?"),
        (f"Unknown setting [core] sql_alchemy_conn in {path}: no part of Updraft reads it; did "
        "you mean [database] sql_alchemy_conn?"),
        (f"Unknown section [webserver] (web_server_port) in {path}: no part of Updraft reads "
        "it; did you mean [web] port?"),
        f"Unknown section [my_team] (bucket) in {path}: no part of Updraft reads it"]
    assert conf.get("my_team", "bucket") == "b"  # a DAG may read its own section
    assert conf.get("nats", "servers") == "nats://n:4222"


def test_misshapen_variables_are_warned_and_known_ones_are_not(fresh, monkeypatch, caplog):
    monkeypatch.setenv("UPDRAFT__EXECUTOR", "local")
    monkeypatch.setenv("UPDRAFT__CORE__EXECUTOR", "local")
    monkeypatch.setenv("UPDRAFT__SECRETS__BACKENDS", "[]")
    conf.reload()
    assert warnings(caplog) == [("UPDRAFT__EXECUTOR is not of the form UPDRAFT__SECTION__KEY: "
                                "no part of Updraft reads it")]


@pytest.mark.parametrize(("written", "meant"), [
    (("core", "paralelism"), ("core", "parallelism")),
    (("dask", "sheduler_address"), ("dask", "scheduler_address")),
    (("worker", "zombie_threshold"), ("scheduler", "zombie_threshold")),
    (("schedular", "parsing_processes"), ("scheduler", "parsing_processes")),
    (("nats", "prefix"), ("nats", "subject_prefix")),
    (("web", "nothing_like_it"), None),
])
def test_the_closest_setting(written, meant):
    assert closest_setting(*written) == meant


def _literal_settings_read() -> set[tuple[str, str]]:
    """Every ``conf.get*("section", "key")`` with literal arguments in Updraft's code."""
    found = set()
    for package in ("updraft", "scheduler", "executors", "bus", "web", "composition"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("get", "getint", "getfloat", "getboolean")
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "conf"
                        and len(node.args) >= 2
                        and all(isinstance(a, ast.Constant) for a in node.args[:2])):
                    found.add((node.args[0].value, node.args[1].value))
    return found


def test_every_setting_the_code_reads_has_a_default():
    missing = sorted((s, k) for s, k in _literal_settings_read() if k not in DEFAULTS.get(s, {}))
    assert missing == []
