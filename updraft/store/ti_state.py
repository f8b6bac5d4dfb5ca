"""Every write of a task instance's state: compare-and-set UPDATEs, checked against the
transition table of ``updraft.state``.

Nothing else in Updraft runs an UPDATE that sets ``task_instance.state`` (a test walks the
code to keep it so). Each write names the states it expects in its WHERE clause (ADR 2:
claims and outcomes are compare-and-set on the state, the try number and the try's
identity), so the table is checked for every expected state against the new one before the
statement runs: :func:`updraft.state.check_transition` raises in validate mode and logs
otherwise. The checks are dictionary lookups; the statements stay what they were (one
statement for a bulk write, one executemany for a set of task instances of one run).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from updraft.state import TaskInstanceState as TI, check_transition
from updraft.store.engine import dialect_of
from updraft.store.models import TaskInstanceModel

_TI = TaskInstanceModel.__table__

#: A state move one statement may make: (expected state, new state).
Move = tuple[TI | str | None, TI | str]


def cas_update(expected: TI | str | Iterable[TI | str], new: Any, *where: Any,
               **values: Any):
    """``UPDATE task_instance SET state=new, **values WHERE *where AND state IN expected``.

    ``new`` is a state or a bind parameter (its value then comes with each execution).
    Build once and run it with :func:`execute`, which checks the table."""
    expected_states = [expected] if isinstance(expected, str) else list(expected)
    condition = (_TI.c.state == str(expected_states[0]) if len(expected_states) == 1
                 else _TI.c.state.in_(sorted(str(s) for s in expected_states)))
    state = str(new) if isinstance(new, str) else new
    return update(_TI).where(*where, condition).values(state=state, **values)


def execute(session: Session, statement: Any, params: Any, moves: Iterable[Move], *,
            where: str):
    """Run a state write built by :func:`cas_update` (or by this module) after checking
    each of its ``moves`` against the table; ``where`` names the writer in the message."""
    for old, new in moves:
        check_transition(old, new, where=where)
    if params is None:
        return session.execute(statement)
    return session.execute(statement, params)


def write_state(session: Session, expected: TI | str | Iterable[TI | str], new: TI | str,
                *where: Any, writer: str, **values: Any) -> int:
    """Compare-and-set the task instances matching ``where`` from one of the ``expected``
    states to ``new`` in one statement; returns how many rows changed."""
    expected_states = [expected] if isinstance(expected, str) else list(expected)
    statement = cas_update(expected_states, new, *where, **values)
    statement = statement.execution_options(synchronize_session=False)
    return execute(session, statement, None, [(old, new) for old in expected_states],
                   where=writer).rowcount


# -- many task instances of one run, each from the state it was read in -----------------------

_CAS_STATEMENTS: dict[frozenset, Any] = {}
_BINDABLE = (str, int, float, type(None), datetime)

#: One change of ``update_many``: (task id, map index), the state and try number read, and
#: the values to write (``state`` among them).
Change = tuple[tuple[str, int], str, int, dict[str, Any]]


def _plain(values: dict[str, Any]) -> bool:
    return all(isinstance(v, _BINDABLE) for v in values.values())


def _keyed_statement(values: dict[str, Any]):
    """The compare-and-set UPDATE for this set of columns; built once when every value is
    plain (building a statement costs more than running it), else built each time."""
    plain = _plain(values)
    stmt = _CAS_STATEMENTS.get(frozenset(values)) if plain else None
    if stmt is None:
        stmt = update(_TI).where(
            _TI.c.dag_id == bindparam("c_dag"), _TI.c.run_id == bindparam("c_run"),
            _TI.c.task_id == bindparam("c_task"), _TI.c.map_index == bindparam("c_index"),
            _TI.c.state == bindparam("c_state"), _TI.c.try_number == bindparam("c_try"),
        ).values({name: bindparam(f"v_{name}") if isinstance(value, _BINDABLE) else value
                  for name, value in values.items()})
        if plain:
            _CAS_STATEMENTS[frozenset(values)] = stmt
    return stmt


def _keyed_params(dag_id: str, run_id: str, key: tuple[str, int], old_state: str,
                  old_try: int, values: dict[str, Any]) -> dict[str, Any]:
    params = {"c_dag": dag_id, "c_run": run_id, "c_task": key[0], "c_index": key[1],
              "c_state": old_state, "c_try": old_try}
    params.update({f"v_{name}": value for name, value in values.items()
                   if isinstance(value, _BINDABLE)})
    return params


def update_many(session: Session, dag_id: str, run_id: str, changes: list[Change], *,
                writer: str) -> set[tuple[str, int]]:
    """Compare-and-set on (key, state, try number) for many task instances of one run;
    returns the keys that changed.

    Changes that set the same columns to plain values go in one executemany. When its total
    row count shows that some were refused (a concurrent writer won), the rows are read
    back: a key counts as changed if its row now holds exactly what was written.
    """
    for _key, old_state, _try, values in changes:
        check_transition(old_state, values["state"], where=writer)
    done: set[tuple[str, int]] = set()
    groups: dict[frozenset, list] = {}
    multi = dialect_of(session).supports_sane_multi_rowcount
    for change in changes:
        key, old_state, old_try, values = change
        if multi and _plain(values):
            groups.setdefault(frozenset(values), []).append(change)
        elif session.execute(_keyed_statement(values), _keyed_params(
                dag_id, run_id, key, old_state, old_try, values)).rowcount:
            done.add(key)
    for group in groups.values():
        result = session.execute(_keyed_statement(group[0][3]), [
            _keyed_params(dag_id, run_id, key, old_state, old_try, values)
            for key, old_state, old_try, values in group])
        if result.rowcount == len(group):
            done.update(key for key, *_rest in group)
            continue
        written = {key: values for key, _state, _try, values in group}
        rows = session.execute(select(_TI).where(
            _TI.c.dag_id == dag_id, _TI.c.run_id == run_id,
            _TI.c.task_id.in_(sorted({key[0] for key in written})))).all()
        for row in rows:
            values = written.get((row.task_id, row.map_index))
            if values is not None and all(getattr(row, name) == value
                                          for name, value in values.items()):
                done.add((row.task_id, row.map_index))
    return done


__all__ = ["Change", "Move", "cas_update", "execute", "update_many", "write_state"]
