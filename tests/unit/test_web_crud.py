"""web/crud.py: the one place the REST API and the UI validate, mask and write variables,
connections and pools."""

from __future__ import annotations

import json

import pytest

from web import crud
from web.crud import ResourceError


@pytest.fixture
def session():
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from updraft.store.models import Base, PoolModel

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(PoolModel(pool="default_pool", slots=128, description="default"))
        session.flush()
        yield session
    engine.dispose()


def _status(call) -> int:
    with pytest.raises(ResourceError) as caught:
        call()
    return caught.value.status


def test_variables_are_encrypted_and_secret_looking_keys_masked(session):
    from updraft.store.models import VariableModel

    crud.set_variable(session, "db_password", "hunter2", "the password")
    shown = crud.set_variable(session, "region", "eu", None)
    assert shown == {"key": "region", "value": "eu", "description": None}
    assert crud.get_variable(session, "db_password") == {
        "key": "db_password", "value": crud.MASK, "description": "the password"}
    assert session.get(VariableModel, 1).val != "hunter2"  # stored encrypted
    rows, total = crud.list_variables(session)
    assert total == 2 and [r["key"] for r in rows] == ["db_password", "region"]
    # A description left out keeps the stored one; create/replace say what may happen.
    assert crud.update_variable(session, "db_password", {"value": "x"})["description"] == \
        "the password"
    assert _status(lambda: crud.set_variable(session, "region", "us", replace=False)) == 409
    assert _status(lambda: crud.update_variable(session, "nope", {"value": "v"})) == 404
    assert _status(lambda: crud.set_variable(session, "", "v")) == 400
    assert _status(lambda: crud.set_variable(session, "tab\tkey", "v")) == 400
    assert crud.delete_variable(session, "region") and not crud.delete_variable(session, "region")


def test_a_connection_never_shows_its_password_and_masks_its_extra(session):
    shown = crud.save_connection(session, "wh", {
        "conn_type": "postgres", "host": "db", "port": "5432", "password": "pw",
        "extra": {"sslmode": "require", "api_token": "t0k"}})
    assert shown["has_password"] is True and "password" not in shown
    assert shown["port"] == 5432
    assert json.loads(shown["extra"]) == {"sslmode": "require", "api_token": crud.MASK}
    # Fields left out keep their value, the password too.
    changed = crud.save_connection(session, "wh", {"host": "db2"}, create=False)
    assert changed["host"] == "db2" and changed["has_password"] is True
    from updraft.models.connection import get_connection

    assert get_connection("wh", session=session).password == "pw"
    assert crud.save_connection(session, "wh", {"password": None})["has_password"] is False
    assert _status(lambda: crud.save_connection(session, "wh", {"conn_type": "http"},
                                                replace=False)) == 409
    assert _status(lambda: crud.save_connection(session, "new", {"host": "h"},
                                                create=False)) == 404
    assert _status(lambda: crud.save_connection(session, "x", {"conn_type": "http",
                                                               "port": "eighty"})) == 400
    assert crud.list_connections(session)[1] == 1
    assert crud.delete_connection(session, "wh") and not crud.delete_connection(session, "wh")


def test_pools_show_their_usage_and_the_default_pool_stays(session):
    shown = crud.save_pool(session, "gpu", {"slots": "4", "description": "cards"})
    assert shown.items() >= {"name": "gpu", "slots": 4, "description": "cards",
                             "running_slots": 0, "queued_slots": 0, "scheduled_slots": 0,
                             "occupied_slots": 0, "open_slots": 4}.items()
    assert crud.save_pool(session, "gpu", {"slots": 2})["description"] == "cards"
    assert _status(lambda: crud.save_pool(session, "gpu", {"slots": 1}, replace=False)) == 409
    assert _status(lambda: crud.save_pool(session, "cpu", {"description": "d"})) == 400
    assert _status(lambda: crud.save_pool(session, "cpu", {"slots": "many"})) == 400
    assert _status(lambda: crud.save_pool(session, "cpu", {"slots": 2**31})) == 400
    assert _status(lambda: crud.delete_pool(session, "default_pool")) == 409
    assert [p["name"] for p in crud.list_pools(session)[0]] == ["default_pool", "gpu"]
    assert crud.delete_pool(session, "gpu") and not crud.delete_pool(session, "gpu")


def test_the_api_and_the_ui_use_it():
    """Neither web/api/resources.py nor web/ui/admin.py reads or writes these tables itself."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for module in ("web/api/resources.py", "web/ui/admin.py"):
        text = (root / module).read_text()
        for name in ("VariableModel", "ConnectionModel", "PoolModel", "Variable.set",
                     "add_connection", "models.connection", "should_hide_value_for_key"):
            assert name not in text, (module, name)
