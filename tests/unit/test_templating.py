"""Templating: environment per DAG, field rendering, files, errors, native mode, the context."""

from __future__ import annotations

import json
import sys
import types
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import jinja2
import pytest

from updraft import macros
from updraft.exceptions import UpdraftNotFoundException
from updraft.schedules import create_timetable
from updraft.templating import (
    KNOWN_CONTEXT_KEYS,
    UpdraftTemplateError,
    build_context,
    get_jinja_env,
    literal,
    render_template,
    render_template_fields,
)


class FakeDag:
    """A DAG stand-in (weak-referenceable, unlike SimpleNamespace)."""

    def __init__(self, tmp_path, **attrs):
        self.dag_id = "etl"
        self.fileloc = str(tmp_path / "etl.py")
        self.template_searchpath = None
        self.template_undefined = None
        self.user_defined_macros = None
        self.user_defined_filters = None
        self.jinja_environment_kwargs = None
        self.render_template_as_native_obj = False
        self.timetable = create_timetable("@daily")
        self.__dict__.update(attrs)


class FakeTask:
    def __init__(self, dag, task_id="load", template_fields=(), template_ext=(), **fields):
        self.dag = dag
        self.task_id = task_id
        self.template_fields = template_fields
        self.template_ext = template_ext
        self.__dict__.update(fields)


class Nested:
    template_fields = ("path", "options")

    def __init__(self, path, options, untouched):
        self.path = path
        self.options = options
        self.untouched = untouched


def make_run(**overrides):
    values = {"run_id": "scheduled__2024-03-05T00:00:00+00:00",
              "logical_date": datetime(2024, 3, 5, tzinfo=UTC),
              "data_interval_start": datetime(2024, 3, 5, tzinfo=UTC),
              "data_interval_end": datetime(2024, 3, 6, tzinfo=UTC),
              "conf": {"table": "orders"}, "run_type": "scheduled",
              "start_date": datetime(2024, 3, 6, 0, 1, tzinfo=UTC)}
    values.update(overrides)
    return SimpleNamespace(**values)


def make_context(dag, task, params=None, **overrides):
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id=task.task_id, run_id="r", map_index=-1,
                         try_number=1, xcom_pull=lambda **kw: "pulled", xcom_push=lambda **kw: None)
    return build_context(dag=dag, task=task, ti=ti, dag_run=make_run(**overrides),
                         params=params if params is not None else {"region": "eu"})


@pytest.fixture
def fake_variables(monkeypatch):
    store = {"bucket": "s3://data", "settings": json.dumps({"batch": 500, "tags": ["a"]})}
    calls = []

    class Variable:
        @classmethod
        def get(cls, key, default_var=KeyError, deserialize_json=False):
            calls.append((key, default_var, deserialize_json))
            if key not in store:
                if default_var is KeyError:
                    raise KeyError(f"Variable {key} does not exist")
                return default_var
            return json.loads(store[key]) if deserialize_json else store[key]

    module = types.ModuleType("updraft.models.variable")
    module.Variable = Variable
    monkeypatch.setitem(sys.modules, "updraft.models.variable", module)
    return calls


@pytest.fixture
def fake_connections(monkeypatch):
    class Connection:
        @classmethod
        def get_connection_from_secrets(cls, conn_id):
            if conn_id != "warehouse":
                raise UpdraftNotFoundException(f"The conn_id `{conn_id}` isn't defined")
            return SimpleNamespace(conn_id=conn_id, host="db.internal", port=5432)

    module = types.ModuleType("updraft.models.connection")
    module.Connection = Connection
    monkeypatch.setitem(sys.modules, "updraft.models.connection", module)


# -- the context -------------------------------------------------------------------------------


def test_context_dates(tmp_path):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag)
    ctx = make_context(dag, task)
    assert ctx["ds"] == "2024-03-05"
    assert ctx["ds_nodash"] == "20240305"
    assert ctx["ts"] == "2024-03-05T00:00:00+00:00"
    assert ctx["ts_nodash"] == "20240305T000000"
    assert ctx["ts_nodash_with_tz"] == "20240305T000000+0000"
    assert ctx["logical_date"] is ctx["execution_date"]
    assert ctx["data_interval_end"] == datetime(2024, 3, 6, tzinfo=UTC)
    assert ctx["next_ds"] == "2024-03-06" and ctx["yesterday_ds"] == "2024-03-04"
    assert ctx["task_instance_key_str"] == "etl__load__20240305"
    assert ctx["run_id"] == "scheduled__2024-03-05T00:00:00+00:00"
    assert ctx["ti"] is ctx["task_instance"]
    assert ctx["macros"] is macros
    assert ctx["inlets"] == [] and ctx["outlets"] == [] and ctx["test_mode"] is False
    assert set(ctx) == KNOWN_CONTEXT_KEYS


def test_context_ds_is_in_utc_even_for_a_local_logical_date(tmp_path):
    dag = FakeDag(tmp_path)
    amsterdam_midnight = datetime(2024, 3, 5, 0, tzinfo=timezone(timedelta(hours=1)))
    ctx = make_context(dag, FakeTask(dag), logical_date=amsterdam_midnight,
                       data_interval_start=amsterdam_midnight)
    assert ctx["ds"] == "2024-03-04"
    assert ctx["logical_date"].utcoffset() == timedelta(0)


def test_context_infers_missing_interval_from_timetable(tmp_path):
    dag = FakeDag(tmp_path)
    ctx = make_context(dag, FakeTask(dag), logical_date=datetime(2024, 3, 5, 13, tzinfo=UTC),
                       data_interval_start=None, data_interval_end=None)
    assert ctx["data_interval_start"] == datetime(2024, 3, 4, tzinfo=UTC)
    assert ctx["data_interval_end"] == datetime(2024, 3, 5, tzinfo=UTC)


def test_extra_overrides_context(tmp_path):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag)
    ti = SimpleNamespace(dag_id="etl", task_id="load")
    ctx = build_context(dag=dag, task=task, ti=ti, dag_run=make_run(), params={},
                        extra={"test_mode": True, "templates_dict": {"a": 1}})
    assert ctx["test_mode"] is True and ctx["templates_dict"] == {"a": 1}


# -- rendering ---------------------------------------------------------------------------------


def test_render_fields_with_ds_ts_macros_params_and_dag_run_conf(tmp_path):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, template_fields=("sql", "note"),
                    sql="SELECT * FROM {{ dag_run.conf['table'] }} WHERE day = '{{ ds }}' "
                        "AND week_ago = '{{ macros.ds_add(ds, -7) }}' AND r = '{{ params.region }}'",
                    note="{{ logical_date | ds_nodash }}/{{ data_interval_end | ts }}")
    shown = render_template_fields(task, make_context(dag, task))
    assert task.sql == ("SELECT * FROM orders WHERE day = '2024-03-05' AND "
                        "week_ago = '2024-02-27' AND r = 'eu'")
    assert task.note == "20240305/2024-03-06T00:00:00+00:00"
    assert shown == {"sql": task.sql, "note": task.note}


def test_var_value_and_json(tmp_path, fake_variables):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, template_fields=("cmd",),
                    cmd="{{ var.value.bucket }} {{ var.json.settings.batch }} "
                        "{{ var.value.get('missing', 'fallback') }} "
                        "{{ var.json.get('settings')['tags'][0] }}")
    render_template_fields(task, make_context(dag, task))
    assert task.cmd == "s3://data 500 fallback a"
    assert ("missing", "fallback", False) in fake_variables


def test_missing_variable_names_field_and_task(tmp_path, fake_variables):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, template_fields=("cmd",), cmd="{{ var.value.nope }}")
    with pytest.raises(UpdraftTemplateError) as err:
        render_template_fields(task, make_context(dag, task))
    assert str(err.value) == ("cannot render template field 'cmd' of task 'load': "
                              "KeyError: 'Variable nope does not exist'")


def test_conn_accessor(tmp_path, fake_connections):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, template_fields=("url",),
                    url="{{ conn.warehouse.host }}:{{ conn.get('warehouse').port }}"
                        "/{{ conn.get('other', 'none') }}")
    render_template_fields(task, make_context(dag, task))
    assert task.url == "db.internal:5432/none"


def test_template_file_by_extension_from_searchpath(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "extract.sh").write_text("echo {{ ds }} {{ params.region }}\n")
    (tmp_path / "beside_dag.sql").write_text("SELECT '{{ ds_nodash }}'")
    dag = FakeDag(tmp_path, template_searchpath=str(scripts))
    task = FakeTask(dag, template_fields=("bash_command", "sql", "inline"),
                    template_ext=(".sh", ".sql"), bash_command="extract.sh",
                    sql="beside_dag.sql", inline="echo not-a-file.txt")
    render_template_fields(task, make_context(dag, task))
    assert task.bash_command == "echo 2024-03-05 eu"
    assert task.sql == "SELECT '20240305'"
    assert task.inline == "echo not-a-file.txt"


def test_missing_template_file_is_reported_with_the_searched_folders(tmp_path):
    dag = FakeDag(tmp_path, template_searchpath=[str(tmp_path / "sql")])
    task = FakeTask(dag, template_fields=("sql",), template_ext=(".sql",), sql="gone.sql")
    with pytest.raises(UpdraftTemplateError) as err:
        render_template_fields(task, make_context(dag, task))
    assert str(err.value) == (f"cannot render template field 'sql' of task 'load': template "
                              f"file 'gone.sql' not found in {tmp_path}, {tmp_path / 'sql'}")
    assert isinstance(err.value.__cause__, jinja2.TemplateNotFound)


def test_nested_structures_and_objects(tmp_path):
    dag = FakeDag(tmp_path)
    inner = Nested(path="/data/{{ ds }}", options={"day": "{{ ds_nodash }}"},
                   untouched="{{ ds }}")
    task = FakeTask(dag, template_fields=("args", "env", "job"),
                    args=["{{ ds }}", ("{{ run_id }}", 3), {"{{ ds }}"}],
                    env={"DAY": "{{ ds }}", "{{ keys }}": "stay", "N": 1},
                    job=inner)
    shown = render_template_fields(task, make_context(dag, task))
    assert task.args == ["2024-03-05", ("scheduled__2024-03-05T00:00:00+00:00", 3),
                         {"2024-03-05"}]
    assert task.env == {"DAY": "2024-03-05", "{{ keys }}": "stay", "N": 1}
    assert task.job is inner
    assert inner.path == "/data/2024-03-05" and inner.options == {"day": "20240305"}
    assert inner.untouched == "{{ ds }}"
    # Stored form: JSON-safe, repr for what JSON cannot hold.
    assert shown["env"] == {"DAY": "2024-03-05", "{{ keys }}": "stay", "N": 1}
    assert shown["args"][2] == repr({"2024-03-05"})
    assert shown["job"].startswith("<")
    json.dumps(shown)


def test_callables_none_and_literals_are_not_rendered(tmp_path):
    dag = FakeDag(tmp_path)

    def callback():
        return "{{ ds }}"

    task = FakeTask(dag, template_fields=("fn", "empty", "raw"), fn=callback, empty=None,
                    raw=literal("{{ ds }}"))
    render_template_fields(task, make_context(dag, task))
    assert task.fn is callback and task.empty is None and task.raw == "{{ ds }}"


def test_user_defined_macros_and_filters(tmp_path):
    dag = FakeDag(tmp_path, user_defined_macros={"project": "acme", "twice": lambda x: x * 2},
                  user_defined_filters={"shout": lambda s: s.upper() + "!"})
    task = FakeTask(dag, template_fields=("cmd",),
                    cmd="{{ project | shout }} {{ twice(21) }}")
    render_template_fields(task, make_context(dag, task))
    assert task.cmd == "ACME! 42"
    assert "project" not in make_context(dag, task)  # macros are env globals, not context


def test_undefined_is_strict_and_names_the_field(tmp_path):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, task_id="x", template_fields=("bash_command",),
                    bash_command="echo {{ no_such_thing }}")
    with pytest.raises(UpdraftTemplateError) as err:
        render_template_fields(task, make_context(dag, task))
    assert str(err.value) == ("cannot render template field 'bash_command' of task 'x': "
                              "'no_such_thing' is undefined")
    assert err.value.field == "bash_command" and err.value.task_id == "x"


def test_lenient_undefined_when_the_dag_asks(tmp_path):
    dag = FakeDag(tmp_path, template_undefined=jinja2.Undefined)
    task = FakeTask(dag, template_fields=("cmd",), cmd="echo [{{ no_such_thing }}]")
    render_template_fields(task, make_context(dag, task))
    assert task.cmd == "echo []"


def test_syntax_error_gives_line(tmp_path):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, template_fields=("cmd",), cmd="ok\n{{ ds }")
    with pytest.raises(UpdraftTemplateError) as err:
        render_template_fields(task, make_context(dag, task))
    assert str(err.value).startswith("cannot render template field 'cmd' of task 'load': "
                                     "syntax error (line 2): ")


def test_native_rendering(tmp_path):
    dag = FakeDag(tmp_path, render_template_as_native_obj=True)
    task = FakeTask(dag, template_fields=("numbers", "count", "text"),
                    numbers="{{ [1, 2] + [params.n] }}", count="{{ params.n * 2 }}",
                    text="day {{ ds }}")
    render_template_fields(task, make_context(dag, task, params={"n": 3}))
    assert task.numbers == [1, 2, 3]
    assert task.count == 6
    assert task.text == "day 2024-03-05"
    plain = FakeDag(tmp_path)
    same = FakeTask(plain, template_fields=("count",), count="{{ params.n * 2 }}")
    render_template_fields(same, make_context(plain, same, params={"n": 3}))
    assert same.count == "6"


def test_env_is_cached_per_dag_and_rebuilt_after_a_change(tmp_path):
    dag = FakeDag(tmp_path)
    first = get_jinja_env(dag)
    assert get_jinja_env(dag) is first
    assert get_jinja_env(dag, native=True) is not first
    assert isinstance(get_jinja_env(dag, native=True), jinja2.nativetypes.NativeEnvironment)
    dag.user_defined_macros = {"x": 1}
    assert get_jinja_env(dag) is not first
    assert get_jinja_env(dag).globals["x"] == 1
    assert get_jinja_env(FakeDag(tmp_path)) is not first


def test_env_for_simplenamespace_dag_and_no_dag(tmp_path):
    dag = SimpleNamespace(dag_id="d", fileloc=str(tmp_path / "d.py"), template_searchpath=None)
    env = get_jinja_env(dag)
    assert env.loader.searchpath == [str(tmp_path)]
    assert env.undefined is jinja2.StrictUndefined
    assert render_template("{{ 1 + 1 }}", {}, get_jinja_env(None)) == "2"


def test_render_template_direct(tmp_path):
    env = get_jinja_env(FakeDag(tmp_path))
    ctx = {"ds": "2024-01-01"}
    assert render_template({"a": ["{{ ds }}"], "b": 5}, ctx, env) == {"a": ["2024-01-01"], "b": 5}
    assert render_template(7, ctx, env) == 7


def test_sandbox_blocks_dunder_attributes(tmp_path):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, template_fields=("cmd",), cmd="{{ ''.__class__.__mro__ }}")
    with pytest.raises(UpdraftTemplateError, match="unsafe"):
        render_template_fields(task, make_context(dag, task))


def test_missing_template_field_attribute(tmp_path):
    dag = FakeDag(tmp_path)
    task = FakeTask(dag, template_fields=("nope",))
    with pytest.raises(AttributeError, match="'nope' is configured as a template field"):
        render_template_fields(task, make_context(dag, task))


# -- macros ------------------------------------------------------------------------------------


def test_macros():
    assert macros.ds_add("2024-02-28", 2) == "2024-03-01"
    assert macros.ds_add("2024-03-01", -1) == "2024-02-29"
    assert macros.ds_format("2024-01-05", "%Y-%m-%d", "%d/%m/%Y") == "05/01/2024"
    assert 0 <= macros.random() < 1 and 1 <= macros.random.randint(1, 6) <= 6
    assert macros.dateutil.relativedelta.relativedelta(months=1).months == 1
    assert macros.json.loads("[1]") == [1] and macros.uuid.UUID(int=1).int == 1
    assert macros.datetime(2024, 1, 1) + macros.timedelta(days=1) == macros.datetime(2024, 1, 2)
    now = datetime.now(UTC)
    assert macros.datetime_diff_for_humans(now - timedelta(days=2, hours=1)) == "2 days ago"
    assert macros.datetime_diff_for_humans(now + timedelta(hours=3, minutes=5)) == "in 3 hours"
    assert macros.datetime_diff_for_humans(datetime(2024, 1, 1),
                                           datetime(2024, 1, 15)) == "2 weeks before"
    assert macros.datetime_diff_for_humans(datetime(2024, 3, 1),
                                           datetime(2024, 3, 1, 0, 0, 3)) == "a few seconds before"
