"""Extension points in one process: the registry (entry points and the plugins folder),
registered timetables, priority-weight strategies, plugin macros, listeners, secrets backends
and notifiers, and the Airflow names that reach them. End to end with real nodes:
``tests/integration/test_plugins.py`` and ``test_airflow_examples.py``."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from updraft import compat
from updraft.config import conf
from updraft.plugins import registry
from updraft.schedules import (
    DagRunInfo,
    DataInterval,
    RegisteredTimetable,
    ScheduleError,
    TimeRestriction,
    Timetable,
    deserialize_timetable,
    next_dagrun_info_at,
    serialize_timetable,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_registry():
    registry.reset()
    yield
    registry.reset()
    compat.uninstall()


@pytest.fixture
def plugins(updraft_home, monkeypatch):
    """The plugins folder of this test; write files into it before the registry reads it."""
    folder = updraft_home / "plugins"
    folder.mkdir()
    return folder


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- the registry -----------------------------------------------------------------------------


def test_updraft_registers_its_own_parts_as_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    for group, entries in declared.items():
        kind = group.removeprefix("updraft.")
        found = {name: ext for name, ext in registry.extensions(kind).items()
                 if ext.distribution == "updraft"}
        assert {name: ext.target for name, ext in found.items()} == entries, group
    assert set(declared) == {f"updraft.{k}" for k in ("executors", "cli", "timetables",
                                                     "priority_weight_strategies",
                                                     "secrets_backends", "notifiers")}
    assert registry.load("timetables", "cron").__name__ == "CronDataIntervalTimetable"
    with pytest.raises(registry.ExtensionError, match="no timetables extension named 'nope' is "
                       "registered .entry-point group updraft.timetables or the plugins "
                       "folder.; registered: asset, asset_and_time, asset_or_time, continuous, cron, "
                       "cron_trigger, delta, none, once"):
        registry.load("timetables", "nope")
    with pytest.raises(ValueError, match="unknown extension kind 'timetable'"):
        registry.extensions("timetable")


PLUGIN_FILE = '''
from datetime import timedelta
from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, Timetable
from airflow.task.priority_strategy import PriorityWeightStrategy
from airflow.listeners import hookimpl

class Weekly(Timetable):
    def __init__(self, weeks=1):
        self.weeks = weeks
    def serialize(self):
        return {"weeks": self.weeks}
    @classmethod
    def deserialize(cls, data):
        return cls(data["weeks"])
    def next_dagrun_info(self, *, last_automated_data_interval, restriction):
        start = (last_automated_data_interval.end if last_automated_data_interval
                 else restriction.earliest)
        end = start.add(weeks=self.weeks)  # pendulum, as Airflow gives
        return DagRunInfo.interval(start=start, end=end)

class TryAware(PriorityWeightStrategy):
    def get_weight(self, ti):
        return 10 - ti.try_number

class Raises(PriorityWeightStrategy):
    def get_weight(self, ti):
        raise RuntimeError("no weight today")

CALLS = []

@hookimpl
def on_starting(component):
    CALLS.append(component)

def shout(text):
    return text.upper() + "!"

class MyPlugin(AirflowPlugin):
    name = "mine"
    timetables = [Weekly]
    priority_weight_strategies = [TryAware, Raises]
    macros = [shout]
    listeners = [sys.modules[__name__]]
'''


def test_plugins_folder_registers_airflow_plugins_and_reports_broken_files(plugins, caplog):
    write(plugins, "mine.py", "import sys\n" + PLUGIN_FILE)
    write(plugins, "broken.py", "raise RuntimeError('broken at import')\n")
    write(plugins, "twice.py", """
        from airflow.plugins_manager import AirflowPlugin
        class Again(AirflowPlugin):
            name = "mine"
    """)
    with caplog.at_level(logging.ERROR, logger="updraft.plugins"):
        timetables = registry.extensions("timetables")
    assert timetables["mine.Weekly"].source == f"plugins folder: {plugins / 'mine.py'} " \
                                               "(plugin 'mine')"
    assert registry.find_name("timetables", sys.modules["mine"].Weekly) == "mine.Weekly"
    strategies = set(registry.extensions("priority_weight_strategies"))
    assert strategies >= {"mine.TryAware", "mine.Raises"}
    assert registry.load("macros", "mine").shout("a") == "A!"
    source = f"plugins folder: {plugins / 'mine.py'} (plugin 'mine')"
    assert registry.folder_plugins() == [("mine", source)]
    errors = {e.name: e for e in registry.load_errors()}
    assert errors["broken"].source == f"plugins folder: {plugins / 'broken.py'}"
    assert errors["broken"].error.startswith("RuntimeError: broken at import (at ")
    (twice,) = [e for e in registry.load_errors() if "twice.py" in e.source]
    assert twice.name == "mine" and "a plugin named 'mine' is already registered from " \
        f"{plugins / 'mine.py'}" in twice.error
    assert len([r for r in caplog.records if "broken at import" in r.getMessage()]) == 1
    assert str(plugins) in sys.path

    # The DAG-file alias of Airflow's examples is the same module object.
    compat.install()
    from airflow.example_dags.plugins import mine as alias  # type: ignore[import-not-found]

    assert alias is sys.modules["mine"] and alias.__name__ == "mine"
    from airflow.example_dags.plugins.mine import Weekly  # type: ignore[import-not-found]

    assert Weekly is registry.load("timetables", "mine.Weekly")
    with pytest.raises(ImportError, match=r"put nowhere\.py in the plugins folder"):
        import airflow.example_dags.plugins.nowhere  # type: ignore[import-not-found]  # noqa: F401


def test_a_changed_plugins_folder_is_read_again(plugins, monkeypatch, tmp_path):
    write(plugins, "first.py", """
        from airflow.plugins_manager import AirflowPlugin
        def one():
            return 1
        class First(AirflowPlugin):
            name = "first"
            macros = [one]
    """)
    assert set(registry.extensions("macros")) == {"first"}
    other = tmp_path / "other_plugins"
    other.mkdir()
    monkeypatch.setenv("UPDRAFT__CORE__PLUGINS_FOLDER", str(other))
    conf.reload()
    assert registry.extensions("macros") == {}
    assert "first" not in sys.modules and str(plugins) not in sys.path


# -- registered timetables ---------------------------------------------------------------------


def test_registered_timetable_serializes_by_name_and_is_scheduled_from_the_registry(plugins):
    write(plugins, "mine.py", "import sys\n" + PLUGIN_FILE)
    weekly = registry.extensions("timetables") and registry.load("timetables", "mine.Weekly")
    data = serialize_timetable(weekly(2))
    assert data == {"__type": "mine.Weekly", "data": {"weeks": 2}}
    again = deserialize_timetable(json.loads(json.dumps(data)))
    assert isinstance(again, RegisteredTimetable) and again.wrapped.weeks == 2
    assert again == deserialize_timetable(data) and serialize_timetable(again) == data
    info = next_dagrun_info_at(again, last_automated_data_interval=None,
                               restriction=TimeRestriction(utc(2024, 1, 1), None, True),
                               now=utc(2024, 6, 1))
    assert info == DagRunInfo.interval(utc(2024, 1, 1), utc(2024, 1, 15))
    assert type(info.run_after) is datetime  # pendulum in, plain UTC out
    assert [i.logical_date for i in again.iter_dagrun_infos_between(
        utc(2024, 1, 1), utc(2024, 2, 1))] == [utc(2024, 1, 1), utc(2024, 1, 15),
                                               utc(2024, 1, 29)]


def test_unregistered_and_unavailable_timetables_say_how_to_register(plugins):
    from updraft.serialization import _timetable
    from updraft.serialized_objects import UnresolvedTimetable

    class Mine(Timetable):
        pass

    data = serialize_timetable(Mine())
    assert data == {"type": "custom", "class": f"{__name__}.{Mine.__qualname__}", "data": {}}
    unresolved = _timetable(data, "Mine", "Mine", "")
    with pytest.raises(ScheduleError) as err:
        unresolved.next_dagrun_info(last_automated_data_interval=None, restriction=None)
    assert str(err.value) == (
        f"custom timetable '{__name__}.{Mine.__qualname__}' is not registered, so it cannot be "
        "computed from the serialized DAG: this node does not import user code from DAG files "
        f"(ADR 3). To schedule it, register the class '{__name__}.{Mine.__qualname__}': an "
        "entry point in the group updraft.timetables ([project.entry-points."
        "\"updraft.timetables\"] <name> = \"<module>:<Class>\" in the package's "
        f"pyproject.toml), or an AirflowPlugin with timetables = [<Class>] in the plugins "
        f"folder ({plugins}); then parse the DAG file again")
    gone = _timetable({"__type": "gone.Weekly", "data": {}}, "w", "w", "")
    assert isinstance(gone, UnresolvedTimetable)
    with pytest.raises(ScheduleError, match="cannot deserialize timetable 'gone.Weekly': no "
                                            "timetables extension named 'gone.Weekly'"):
        gone.infer_manual_data_interval(run_after=utc(2024, 1, 1))


def test_a_failing_timetable_costs_only_its_dag(updraft_home, _sqlite_template, monkeypatch,
                                                caplog):
    import shutil

    from scheduler.runs import TIMETABLE_RETRY, create_due_runs
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    conf.reload()

    class Dag:
        def __init__(self, dag_id, timetable):
            self.dag_id, self.timetable = dag_id, timetable
            self.start_date, self.end_date, self.catchup = utc(2024, 1, 1), None, True
            self.max_active_runs, self.task_dict, self.dag_hash = 16, {}, "h"

    class Explodes(Timetable):
        def next_dagrun_info(self, **_kwargs):
            raise RuntimeError("cannot tell")

    from updraft.schedules import CronDataIntervalTimetable

    dags = {"bad": Dag("bad", RegisteredTimetable("x.Explodes", Explodes())),
            "good": Dag("good", CronDataIntervalTimetable("@daily"))}
    now = utc(2024, 1, 3, 12)
    with session_scope() as session:
        session.add_all([DagModel(dag_id=d, is_active=True, is_paused=False) for d in dags])
    with session_scope() as session, caplog.at_level(logging.ERROR):
        created = create_due_runs(session, now, lambda _s, dag_id: dags[dag_id])
    assert sorted(created) == [("good", "scheduled__2024-01-01T00:00:00+00:00"),
                               ("good", "scheduled__2024-01-02T00:00:00+00:00")]
    with session_scope() as session:
        bad = session.get(DagModel, "bad")
        assert (bad.next_dagrun, bad.next_dagrun_create_after) == (None, now + TIMETABLE_RETRY)
    assert "DAG bad: its timetable cannot give the next run" in caplog.text
    assert "timetable 'x.Explodes' (" in caplog.text and "cannot tell" in caplog.text


# -- priority-weight strategies -----------------------------------------------------------------


def test_strategies_by_name_class_path_class_or_instance(plugins):
    from updraft.dag import DAG
    from updraft.exceptions import DagDefinitionError
    from updraft.operators.empty import EmptyOperator
    from updraft.priority_weights import compute_weights, strategy_name

    write(plugins, "mine.py", "import sys\n" + PLUGIN_FILE)
    registry.extensions("priority_weight_strategies")
    mine = sys.modules["mine"]
    assert strategy_name("upstream") == "upstream"
    assert strategy_name("airflow.task.priority_strategy._AbsolutePriorityWeightStrategy") \
        == "absolute"
    assert strategy_name(mine.TryAware()) == "mine.TryAware"
    assert strategy_name(mine.TryAware) == "mine.TryAware"
    assert strategy_name("airflow.example_dags.plugins.mine.TryAware") == "mine.TryAware"
    with pytest.raises(ValueError, match="priority-weight strategy 'pkg.Nope' is not "
                                         "registered: register the class in the entry-point "
                                         "group updraft.priority_weight_strategies"):
        strategy_name("pkg.Nope")

    with DAG("w", start_date=utc(2024, 1, 1), schedule=None) as dag:
        a = EmptyOperator(task_id="a", priority_weight=3)
        b = EmptyOperator(task_id="b", weight_rule=mine.TryAware())
        c = EmptyOperator(task_id="c", weight_rule="upstream", priority_weight=5)
        d = EmptyOperator(task_id="d", weight_rule=mine.Raises())
        a >> b >> c
        a >> d
    assert b.weight_rule == "mine.TryAware"
    weights = compute_weights(dag.task_dict)
    assert weights == {"a": 3 + 1 + 5 + 1, "b": 10, "c": 5 + 3 + 1, "d": 1}
    assert compute_weights(dag.task_dict, try_number=2)["b"] == 8
    (error,) = [e for e in registry.load_errors() if e.name == "mine.Raises"]
    assert error.source == "task w.d" and error.error.startswith("RuntimeError: no weight today")
    with pytest.raises(DagDefinitionError, match="Task 'e': weight_rule must be one of "):
        EmptyOperator(task_id="e", weight_rule=object())


# -- macros and listeners -------------------------------------------------------------------------


def test_plugin_macros_in_templates(plugins):
    from updraft import macros
    from updraft.templating import get_jinja_env, render_template

    write(plugins, "mine.py", "import sys\n" + PLUGIN_FILE)
    context = {"macros": macros, "ds": "2024-01-02"}
    assert render_template("{{ macros.mine.shout(ds) }} {{ macros.ds_add(ds, 1) }}", context,
                           get_jinja_env()) == "2024-01-02! 2024-01-03"
    compat.install()
    import airflow.macros  # type: ignore[import-not-found]

    assert airflow.macros.mine.shout("x") == "X!"
    with pytest.raises(AttributeError, match="macros.mine has no macro 'whisper'; it has shout"):
        macros.mine.whisper  # noqa: B018
    with pytest.raises(AttributeError, match="no macros extension named 'other'"):
        macros.other  # noqa: B018


def test_listeners_get_what_they_declare_and_cannot_break_anything(plugins, caplog):
    from updraft.listeners import call_hook, hookimpl, notify_task_instance_finished

    write(plugins, "mine.py", "import sys\n" + PLUGIN_FILE)
    write(plugins, "loud.py", """
        from airflow.plugins_manager import AirflowPlugin
        HEARD = []
        class Loud:
            def on_task_instance_failed(self, task_instance, error):  # no previous_state
                HEARD.append((task_instance.task_id, task_instance.state, str(error)))
            def on_task_instance_success(self, **everything):
                raise ValueError("listener bug")
        class LoudPlugin(AirflowPlugin):
            name = "loud"
            listeners = [Loud()]
    """)
    assert call_hook("on_starting", component="scheduler") == 1
    assert sys.modules["mine"].CALLS == ["scheduler"]

    class Ti:
        task_id, state = "t", "running"

    with caplog.at_level(logging.ERROR, logger="updraft.listeners"):
        notify_task_instance_finished(Ti(), "up_for_retry", ValueError("x"))
        notify_task_instance_finished(Ti(), "success")
    assert sys.modules["loud"].HEARD == [("t", "up_for_retry", "x")]
    assert "Listener Loud failed in on_task_instance_success; the state change stands" \
        in caplog.text
    def hook():
        pass

    assert hookimpl(hook) is hook and hook.updraft_listener_hook is True  # type: ignore
    with pytest.raises(ValueError, match="unknown listener hook"):
        call_hook("on_task_instance_exploded")


# -- secrets backends -----------------------------------------------------------------------------


def test_local_filesystem_backend_reads_json_yaml_and_env(tmp_path):
    from updraft.secrets_backends import LocalFilesystemBackend, SecretsFileError

    (tmp_path / "vars.json").write_text(json.dumps({"a": "1", "obj": {"k": [1, 2]}}))
    (tmp_path / "conns.yaml").write_text(textwrap.dedent("""
        pg: postgresql://u:p%40ss@db:5432/x
        api:
          conn_type: http
          host: api.example
          password: tok3n
          extra_dejson: {verify: false}
    """))
    (tmp_path / "vars.env").write_text("# comment\nA=one\nB=two=2\n")
    backend = LocalFilesystemBackend(variables_file_path=str(tmp_path / "vars.json"),
                                     connections_file_path=str(tmp_path / "conns.yaml"))
    assert backend.get_variable("a") == "1" and json.loads(backend.get_variable("obj")) == \
        {"k": [1, 2]}
    assert backend.get_variable("missing") is None
    pg = backend.get_connection("pg")
    assert (pg.conn_type, pg.host, pg.login, pg.password, pg.port) == ("postgres", "db", "u",
                                                                       "p@ss", 5432)
    api = backend.get_connection("api")
    assert api.extra_dejson == {"verify": False} and api.password == "tok3n"
    assert backend.get_conn_value("pg").startswith("postgres://u:p%40ss@db:5432")
    env = LocalFilesystemBackend(variables_file_path=str(tmp_path / "vars.env"))
    assert (env.get_variable("A"), env.get_variable("B")) == ("one", "two=2")

    (tmp_path / "bad.env").write_text("GOOD=1\nno equals sign\n")
    with pytest.raises(SecretsFileError, match=r"bad.env:2: invalid line \(no '=' in the line\)"):
        LocalFilesystemBackend(variables_file_path=str(tmp_path / "bad.env")).get_variable("x")
    (tmp_path / "bad.json").write_text('{"a": 1,}')
    with pytest.raises(SecretsFileError, match=r"bad.json:1: invalid JSON"):
        LocalFilesystemBackend(variables_file_path=str(tmp_path / "bad.json")).get_variable("a")


def test_lookup_order_env_then_backends_then_store_and_masking(store_url, tmp_path,
                                                                monkeypatch, caplog):
    from updraft.models.connection import Connection
    from updraft.models.variable import Variable
    from updraft.secrets import redact

    (tmp_path / "vars.json").write_text(json.dumps({"shared": "from-file",
                                                    "api_token": "tok-from-file"}))
    (tmp_path / "conns.json").write_text(json.dumps(
        {"db": {"conn_type": "postgres", "host": "file-host", "password": "file-pw"}}))
    (updraft_toml := Path(conf.config_file())).write_text(textwrap.dedent(f"""
        [secrets]
        backends = [
          "module_that_does_not_exist:Backend",
          {{backend = "airflow.secrets.local_filesystem.LocalFilesystemBackend", kwargs = {{variables_file_path = "{tmp_path / 'vars.json'}", connections_file_path = "{tmp_path / 'conns.json'}"}}}},
        ]
    """))
    conf.reload()
    Variable.set("shared", "from-store")
    Variable.set("only_store", "store-value")
    assert Variable.get("shared") == "from-file"
    assert Variable.get("only_store") == "store-value"
    monkeypatch.setenv("AIRFLOW_VAR_SHARED", "from-env")
    assert Variable.get("shared") == "from-env"
    assert Variable.get("api_token") == "tok-from-file"
    conn = Connection.get_connection_from_secrets("db")
    assert (conn.host, conn.password) == ("file-host", "file-pw")
    assert redact("tok-from-file and file-pw") == "*** and ***"
    (error,) = [e for e in registry.load_errors() if e.kind == "secrets_backends"]
    assert error.name == "module_that_does_not_exist:Backend"
    assert "ModuleNotFoundError" in error.error
    assert updraft_toml.exists()


# -- notifiers -------------------------------------------------------------------------------------


def test_notifier_renders_its_fields_on_a_copy_each_time():
    from updraft.notifications import BaseNotifier, NatsNotifier

    sent = []

    class Recorder(BaseNotifier):
        template_fields = ("message",)

        def __init__(self, message):
            super().__init__()
            self.message = message

        def notify(self, context):
            sent.append(self.message)

    notifier = Recorder("{{ ti.task_id }} is {{ ti.state }}")

    class Ti:
        def __init__(self, task_id, state):
            self.task_id, self.state = task_id, state

    notifier({"ti": Ti("a", "failed")})
    notifier({"ti": Ti("b", "success")})
    assert sent == ["a is failed", "b is success"]
    assert notifier.message == "{{ ti.task_id }} is {{ ti.state }}"
    Recorder("{{ dag }}: {{ task_list }}")("d", ["t1"], [], None, None)  # Airflow 2's SLA form
    assert sent[-1] == "d: ['t1']"
    payload = json.loads(NatsNotifier(subject="s").payload(
        {"ti": Ti("a", "failed"), "exception": ValueError("x"), "logical_date": utc(2024, 1, 1)}))
    assert payload == {"v": 1, "dag_id": None, "run_id": None, "task_id": "a",
                       "map_index": None, "try_number": None, "state": "failed",
                       "logical_date": "2024-01-01T00:00:00+00:00", "exception": "ValueError: x",
                       "reason": None}


def test_airflow_names_for_extension_points():
    compat.install()
    from airflow.listeners import hookimpl  # type: ignore[import-not-found]
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore
    from airflow.plugins_manager import AirflowPlugin  # type: ignore[import-not-found]
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier  # type: ignore
    from airflow.sdk import BaseNotifier as SdkNotifier  # type: ignore[import-not-found]
    from airflow.secrets.local_filesystem import LocalFilesystemBackend  # type: ignore

    from updraft import listeners, notifications, secrets_backends
    from updraft.plugins.base import UpdraftPlugin

    assert AirflowPlugin is UpdraftPlugin and hookimpl is listeners.hookimpl
    assert BaseNotifier is SdkNotifier is notifications.BaseNotifier
    assert SmtpNotifier is notifications.SmtpNotifier
    assert LocalFilesystemBackend is secrets_backends.LocalFilesystemBackend
    assert DataInterval.exact(utc(2024, 1, 1)).end == utc(2024, 1, 1)
