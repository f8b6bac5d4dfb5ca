"""Large XCom values: references in the stored JSON, the object-storage backend on a local
folder, dataset names, the lifetime rule, the executor's resource rule and the UI's view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from updraft.models.xcom import deserialize_value, serialize_value
from updraft.xcom_backends import XComReference, try_scope, value_kind

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")
dd = pytest.importorskip("dask.dataframe")


def _request(try_number: int = 1):
    return SimpleNamespace(dag_id="d", run_id="manual__x/1", task_id="t", map_index=-1,
                           try_number=try_number)


@pytest.fixture
def storage(tmp_path, monkeypatch):
    import dask

    from updraft.config import conf

    monkeypatch.setenv("UPDRAFT__XCOM__OBJECT_STORAGE_PATH", (tmp_path / "obj").as_uri())
    conf.reload()
    with dask.config.set(scheduler="threads"):
        yield tmp_path / "obj"


def test_value_kinds_are_known_without_importing_them():
    import dask.array as da
    import dask.bag as db

    assert value_kind(pd.DataFrame({"a": [1]})) == "pandas.DataFrame"
    assert value_kind(pd.Series([1])) == "pandas.Series"
    assert value_kind(np.arange(3)) == "numpy.ndarray"
    assert value_kind(dd.from_pandas(pd.DataFrame({"a": [1]}), npartitions=1)) == \
        "dask.dataframe.DataFrame"
    assert value_kind(da.ones(3)) == "dask.array.Array"
    assert value_kind(db.from_sequence([1])) == "dask.bag.Bag"
    assert value_kind([1]) is None and value_kind("x") is None


def test_a_large_value_is_refused_outside_a_try_with_a_hint():
    with pytest.raises(TypeError, match="kept on the Dask cluster or in object storage"):
        serialize_value(pd.DataFrame({"a": [1]}), task_id="t")


def test_references_are_small_json_and_resolve_only_in_a_try(storage):
    import dask.array as da
    import dask.bag as db

    frame = dd.from_pandas(pd.DataFrame({"a": range(1000), "b": range(1000)}), npartitions=4)
    ti = SimpleNamespace(pending_xcoms={"return_value": {
        "frame": frame, "table": pd.DataFrame({"x": [1, 2]}), "array": np.arange(6),
        "blocks": da.ones((10, 4), chunks=(3, 2)), "bag": db.from_sequence(range(10), 2),
        "series": pd.Series([1.5, 2.5], name="s"), "plain": [1, "two"]}})
    with try_scope(_request()) as scope:
        scope.offload(ti)
    text = serialize_value(ti.pending_xcoms["return_value"], task_id="t")
    assert len(text) < 3000
    outside = deserialize_value(text)  # the web, the scheduler: references, no data
    ref = outside["frame"]
    assert isinstance(ref, XComReference) and ref.backend == "object_storage"
    assert ref.describe()["shape"] == [1000, 2] and ref.describe()["npartitions"] == 4
    assert outside["plain"] == [1, "two"]
    with try_scope(_request()):
        inside = deserialize_value(text)
    assert int(inside["frame"].a.sum().compute()) == sum(range(1000))
    assert inside["table"].equals(pd.DataFrame({"x": [1, 2]}))
    assert inside["array"].tolist() == list(range(6))
    assert inside["blocks"].chunks == ((3, 3, 3, 1), (2, 2))
    assert float(inside["blocks"].sum().compute()) == 40.0
    assert inside["bag"].sum().compute() == 45
    assert inside["series"].name == "s" and inside["series"].tolist() == [1.5, 2.5]


def test_a_failed_try_leaves_its_large_values_out_of_its_result():
    from updraft.state import TaskInstanceState as TI
    from updraft.task_execution import TryResult

    result = TryResult(state=TI.FAILED, xcoms={"big": np.arange(3), "small": 1})
    with try_scope(_request()) as scope:
        pass
    scope.drop_unsent(result)
    assert result.xcoms == {"small": 1}


def test_dataset_names_carry_the_try_and_parse_back():
    from updraft.xcom_backends.cluster import dataset_name, parse_name

    scope = SimpleNamespace(dag_id="d|x", run_id="manual__2024/01", task_id="t.1",
                            map_index=3, try_number=2)
    name = dataset_name(scope, "return_value", "a.b")
    assert name.startswith("updraft-xcom|") and name.count("|") == 7
    assert parse_name(name) == {"dag_id": "d|x", "run_id": "manual__2024/01", "task_id": "t.1",
                                "map_index": 3, "key": "return_value", "try_number": 2,
                                "path": "a.b"}
    assert parse_name("someone-elses") is None


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("ti", "row", "run", "retention", "kept", "why"), [
    (("running", 1), None, ("running", None), 3600, True, "running"),
    (("success", 1), "NAME", ("running", None), 3600, True, "in use"),
    (("success", 2), "NAME", ("running", None), 3600, False, "try 2"),
    ((None, 1), "NAME", ("queued", None), 3600, False, "cleared"),
    (("success", 1), "other", ("running", None), 3600, False, "no longer refers"),
    (("success", 1), "NAME", ("success", NOW - timedelta(hours=2)), 3600, False, "ended"),
    (("success", 1), "NAME", ("success", NOW - timedelta(minutes=2)), 3600, True, "in use"),
    (("success", 1), "NAME", ("success", NOW), 0, False, "ended"),
    (("success", 1), "NAME", ("success", NOW - timedelta(days=9)), -1, True, "in use"),
    (None, None, None, 3600, False, "gone"),
])
def test_the_lifetime_rule(ti, row, run, retention, kept, why):
    from updraft.xcom_backends.reaper import keep

    key = ("d", "r", "t", -1)
    parts = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1,
             "key": "return_value", "try_number": 1}
    tis = {key: SimpleNamespace(state=ti[0], try_number=ti[1])} if ti else {}
    xcoms = {(*key, "return_value"): f'{{"location":"{row}"}}'} if row else {}
    runs = {key[:2]: SimpleNamespace(state=run[0], end_date=run[1])} if run else {}
    decision, reason = keep(parts, "NAME", tis, runs, xcoms, NOW, retention)
    assert decision is kept and why in reason


def test_object_storage_reaper_removes_what_the_store_no_longer_refers_to(storage,
                                                                        monkeypatch):
    from updraft.xcom_backends import object_storage, reaper

    ti = SimpleNamespace(pending_xcoms={"return_value": np.arange(4)})
    with try_scope(_request()) as scope:
        scope.offload(ti)
    ref = ti.pending_xcoms["return_value"]
    [(path, parts)] = object_storage.list_folders()
    assert parts["try_number"] == 1 and ref.location.startswith(storage.as_uri())
    text = serialize_value(ref)
    key = ("d", "manual__x/1", "t", -1)
    facts = {"tis": {key: SimpleNamespace(state="success", try_number=1)},
             "runs": {key[:2]: SimpleNamespace(state="running", end_date=None)},
             "xcoms": {(*key, "return_value"): text}}
    monkeypatch.setattr(reaper, "_facts", lambda session, keys: (
        facts["tis"], facts["runs"], facts["xcoms"]))
    monkeypatch.setattr("updraft.store.engine.session_scope", _null_session)
    assert reaper.reap_object_storage(None, NOW) == []
    facts["tis"][key] = SimpleNamespace(state="scheduled", try_number=1)  # cleared
    assert reaper.reap_object_storage(None, NOW) == [path]
    assert object_storage.list_folders() == []


class _null_session:
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_resources_a_try_needs_and_whether_a_worker_has_them():
    from executors.dask import can_run, describe_needs, parse_resources, try_resources
    from updraft.runtime import TryRequest

    request = TryRequest("d", "r", "t", -1, 1, "f.py", queue="gpu",
                         resources={"GPU": 1, "MEMORY": 8e9}, pool="db", pool_slots=2)
    assert try_resources(request) == {"queue-gpu": 1, "GPU": 1.0, "MEMORY": 8e9}
    assert try_resources(request, {"pool-db"})["pool-db"] == 2.0
    workers = {"tcp://a": {"queue-gpu": 1000.0}, "tcp://b": {"GPU": 1.0, "MEMORY": 16e9}}
    needs = try_resources(request)
    assert not can_run(needs, workers.values())
    assert can_run({"GPU": 1.0, "MEMORY": 8e9}, workers.values())
    message = describe_needs(needs, workers)
    assert "GPU=1, MEMORY=8e+09, queue-gpu=1" in message and "tcp://b: GPU=1" in message
    assert parse_resources("GPU=1,MEMORY=8e9") == {"GPU": 1.0, "MEMORY": 8e9}
    with pytest.raises(ValueError, match="NAME=AMOUNT"):
        parse_resources("GPU")


def test_the_context_has_a_lazy_dask_client_and_task_dask_exists():
    from updraft import task
    from updraft.dask_support import DaskDecoratedOperator, LazyDaskClient, NoDaskCluster
    from updraft.templating import KNOWN_CONTEXT_KEYS

    assert "dask_client" in KNOWN_CONTEXT_KEYS
    lazy = LazyDaskClient()
    assert "first use" in repr(lazy)
    with pytest.raises(NoDaskCluster, match="dask_client is not available"):
        lazy.get()
    decorated = task.dask(lambda client=None: 1)
    assert decorated.operator_class is DaskDecoratedOperator


def test_schedulers_without_the_dask_executor_reap_object_storage_on_a_thread(storage,
                                                                            monkeypatch):
    """The local and NATS executors have no watchdog: the scheduler's reaper thread applies
    the rule every ``[xcom] reap_interval`` seconds (a folder no task instance holds goes)."""
    import time

    from scheduler.xcom_reaping import ObjectStorageReaper
    from updraft.xcom_backends import object_storage, reaper

    ti = SimpleNamespace(pending_xcoms={"return_value": np.arange(4)})
    with try_scope(_request()) as scope:
        scope.offload(ti)
    assert len(object_storage.list_folders()) == 1
    monkeypatch.setattr(reaper, "_facts", lambda session, keys: ({}, {}, {}))
    monkeypatch.setattr("updraft.store.engine.session_scope", _null_session)
    thread = ObjectStorageReaper(None, interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while object_storage.list_folders() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop()
    assert object_storage.list_folders() == []
