"""End-to-end ``dag.test()`` runs: operators, branching, retries, mapping, callbacks, params,
setup/teardown, XComs, per-try logs and the runner's compare-and-set, with Airflow's results."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest

from updraft import DAG, Param, TaskGroup, Variable, task
from updraft.decorators import setup, teardown
from updraft.exceptions import ParamValidationError, UpdraftFailException, UpdraftSkipException
from updraft.operators.bash import BashOperator
from updraft.operators.empty import EmptyOperator
from updraft.operators.python import BranchPythonOperator, PythonOperator, ShortCircuitOperator
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = datetime(2024, 1, 2, tzinfo=UTC)
NO_DELAY = timedelta(seconds=0)


@pytest.fixture(autouse=True)
def sqlite_store(updraft_home, _sqlite_template):
    """A migrated SQLite store in this test's UPDRAFT_HOME (copied, not migrated again)."""
    shutil.copyfile(_sqlite_template, updraft_home / "updraft.db")
    return updraft_home


def new_dag(dag_id: str, **kwargs) -> DAG:
    kwargs.setdefault("start_date", START)
    kwargs.setdefault("schedule", None)
    return DAG(dag_id, **kwargs)


def tis(run) -> dict:
    """Task instances of a run by task id (by (task id, map index) for mapped ones)."""
    return {(t.task_id if t.map_index < 0 else (t.task_id, t.map_index)): t
            for t in run.get_task_instances()}


def states(run) -> dict:
    return {k: v.state for k, v in tis(run).items()}


def xcom(run, task_id, key="return_value"):
    any_ti = run.get_task_instances()[0]
    return any_ti.xcom_pull(task_ids=task_id, key=key)


# -- PythonOperator -------------------------------------------------------------------------

def test_python_operator_arguments_and_context():
    seen = {}

    def fn(a, b, *, c, ds, ti, templates_dict):
        seen.update(a=a, b=b, c=c, ds=ds, ti_task=ti.task_id, templates=templates_dict)
        return a + b

    def with_context(**context):
        seen["keys"] = set(context)
        return context["ds_nodash"]

    with new_dag("py") as d:
        PythonOperator(task_id="p", python_callable=fn, op_args=[1, 2], op_kwargs={"c": "{{ ds }}"},
                       templates_dict={"when": "{{ ds_nodash }}"})
        PythonOperator(task_id="ctx", python_callable=with_context)
    run = d.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert seen["a"] == 1 and seen["b"] == 2
    assert seen["c"] == "2024-01-02" and seen["ds"] == "2024-01-02"
    assert seen["ti_task"] == "p"
    assert seen["templates"] == {"when": "20240102"}
    assert {"ti", "ds", "params", "dag_run", "logical_date", "task"} <= seen["keys"]
    assert xcom(run, "p") == 3
    assert xcom(run, "ctx") == "20240102"
    p = tis(run)["p"]
    assert (p.state, p.try_number) == (TI.SUCCESS, 1)


def test_taskflow_passes_values_and_returns_run():
    with new_dag("flow") as d:
        @task
        def extract():
            return {"a": 1, "b": 2}

        @task
        def total(data: dict, factor: int = 1) -> int:
            return sum(data.values()) * factor

        total(extract(), factor=10)
    run = d.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "total") == 30


# -- BashOperator ---------------------------------------------------------------------------

def test_bash_templated_command_last_line_is_xcom():
    with new_dag("bash") as d:
        BashOperator(task_id="b", bash_command="echo first; echo {{ ds }} {{ params.w }}",
                     params={"w": "word"})
    run = d.test(logical_date=DAY)
    assert xcom(run, "b") == "2024-01-02 word"


def test_bash_env_and_append_env(monkeypatch):
    monkeypatch.setenv("UPDRAFT_TEST_OUTER", "outer")
    cmd = 'echo "${FOO:-none}/${UPDRAFT_TEST_OUTER:-unset}"'
    with new_dag("bashenv") as d:
        BashOperator(task_id="only", bash_command=cmd, env={"FOO": "{{ ds }}"})
        BashOperator(task_id="appended", bash_command=cmd, env={"FOO": "x"}, append_env=True)
        BashOperator(task_id="inherit", bash_command=cmd)
        BashOperator(task_id="ctx", bash_command="echo $AIRFLOW_CTX_TASK_ID")
    run = d.test(logical_date=DAY)
    assert xcom(run, "only") == "2024-01-02/unset"
    assert xcom(run, "appended") == "x/outer"
    assert xcom(run, "inherit") == "none/outer"
    assert xcom(run, "ctx") == "ctx"


def test_bash_cwd(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    with new_dag("bashcwd") as d:
        BashOperator(task_id="b", bash_command="pwd", cwd=str(workdir))
        BashOperator(task_id="missing", bash_command="pwd", cwd=str(tmp_path / "nope"))
    run = d.test(logical_date=DAY)
    assert xcom(run, "b") == str(workdir)
    assert states(run)["missing"] == TI.FAILED


def test_bash_exit_codes():
    with new_dag("bashexit") as d:
        BashOperator(task_id="skip", bash_command="exit 99")
        BashOperator(task_id="fail", bash_command="echo oops; exit 3")
        BashOperator(task_id="custom", bash_command="exit 5", skip_on_exit_code=[5])
    run = d.test(logical_date=DAY)
    s = tis(run)
    assert (s["skip"].state, s["skip"].try_number) == (TI.SKIPPED, 1)
    assert (s["fail"].state, s["fail"].try_number) == (TI.FAILED, 1)
    assert s["custom"].state == TI.SKIPPED
    assert run.state == DagRunState.FAILED


def test_bash_script_template_file(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "hello.sh").write_text("echo hello {{ params.name }} {{ ds }}\n")
    with new_dag("bashfile", template_searchpath=str(scripts)) as d:
        BashOperator(task_id="b", bash_command="hello.sh", params={"name": "bob"})
    run = d.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "b") == "hello bob 2024-01-02"


def test_empty_operator():
    with new_dag("empty") as d:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    run = d.test(logical_date=DAY)
    assert states(run) == {"a": TI.SUCCESS, "b": TI.SUCCESS}


# -- branching and short-circuit ---------------------------------------------------------------

def test_branch_python_operator():
    with new_dag("branch") as d:
        br = BranchPythonOperator(task_id="br", python_callable=lambda: "b1")
        b1, b2 = EmptyOperator(task_id="b1"), EmptyOperator(task_id="b2")
        after_b2 = EmptyOperator(task_id="after_b2")
        join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
        br >> [b1, b2]
        b2 >> after_b2
        [b1, after_b2] >> join
    run = d.test(logical_date=DAY)
    s = tis(run)
    assert run.state == DagRunState.SUCCESS
    assert s["b1"].state == TI.SUCCESS
    assert (s["b2"].state, s["b2"].try_number) == (TI.SKIPPED, 0)
    assert (s["after_b2"].state, s["after_b2"].try_number) == (TI.SKIPPED, 0)
    assert s["join"].state == TI.SUCCESS
    assert xcom(run, "br") == "b1"


def test_task_branch_to_a_task_group_and_to_nothing():
    with new_dag("branchgroup") as d:
        @task.branch
        def choose():
            return "grp"

        with TaskGroup("grp") as grp:
            first = EmptyOperator(task_id="first")
            first >> EmptyOperator(task_id="second")
        other = EmptyOperator(task_id="other")
        choose() >> [grp, other]

        @task.branch
        def nothing():
            return None

        n = nothing()
        n >> [EmptyOperator(task_id="x"), EmptyOperator(task_id="y")]
    run = d.test(logical_date=DAY)
    s = states(run)
    assert s["grp.first"] == TI.SUCCESS and s["grp.second"] == TI.SUCCESS
    assert s["other"] == TI.SKIPPED
    assert s["x"] == TI.SKIPPED and s["y"] == TI.SKIPPED
    assert run.state == DagRunState.SUCCESS


def test_branch_to_unknown_task_fails():
    with new_dag("branchbad") as d:
        BranchPythonOperator(task_id="br", python_callable=lambda: "ghost") >> \
            EmptyOperator(task_id="a")
    run = d.test(logical_date=DAY)
    assert states(run) == {"br": TI.FAILED, "a": TI.UPSTREAM_FAILED}


@pytest.mark.parametrize("ignore", [True, False])
def test_short_circuit(ignore):
    with new_dag(f"sc_{ignore}") as d:
        sc = ShortCircuitOperator(task_id="sc", python_callable=lambda: False,
                                  ignore_downstream_trigger_rules=ignore)
        direct = EmptyOperator(task_id="direct")
        all_done = EmptyOperator(task_id="all_done", trigger_rule="all_done")
        plain = EmptyOperator(task_id="plain")
        sc >> direct >> [all_done, plain]
    run = d.test(logical_date=DAY)
    s = states(run)
    assert s["sc"] == TI.SUCCESS
    assert s["direct"] == TI.SKIPPED
    assert s["plain"] == TI.SKIPPED
    assert s["all_done"] == (TI.SKIPPED if ignore else TI.SUCCESS)
    assert run.state == DagRunState.SUCCESS


def test_short_circuit_true_continues():
    with new_dag("sctrue") as d:
        @task.short_circuit
        def check():
            return 5

        check() >> EmptyOperator(task_id="next")
    run = d.test(logical_date=DAY)
    assert states(run) == {"check": TI.SUCCESS, "next": TI.SUCCESS}


# -- retries and failure modes -----------------------------------------------------------------

def test_retries_then_success_and_exhausted():
    calls = {"flaky": 0, "broken": 0}
    retried = []

    def flaky():
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise RuntimeError("not yet")
        return "ok"

    def broken():
        calls["broken"] += 1
        raise RuntimeError("always")

    with new_dag("retries", default_args={"retry_delay": timedelta(seconds=0.1)}) as d:
        PythonOperator(task_id="flaky", python_callable=flaky, retries=3,
                       on_retry_callback=lambda ctx: retried.append(ctx["ti"].try_number))
        PythonOperator(task_id="broken", python_callable=broken, retries=2,
                       retry_delay=NO_DELAY)
    started = time.monotonic()
    run = d.test(logical_date=DAY)
    assert time.monotonic() - started >= 0.2  # two retry delays of 0.1 s
    s = tis(run)
    assert (s["flaky"].state, s["flaky"].try_number) == (TI.SUCCESS, 3)
    assert (s["broken"].state, s["broken"].try_number) == (TI.FAILED, 3)
    assert calls == {"flaky": 3, "broken": 3}
    assert retried == [1, 2]
    assert run.state == DagRunState.FAILED


def test_fail_and_skip_exceptions():
    def fail():
        raise UpdraftFailException("give up")

    def skip():
        raise UpdraftSkipException("nothing to do")

    with new_dag("exc") as d:
        f = PythonOperator(task_id="fail", python_callable=fail, retries=3, retry_delay=NO_DELAY)
        s = PythonOperator(task_id="skip", python_callable=skip, retries=3)
        f >> EmptyOperator(task_id="after_fail")
        s >> EmptyOperator(task_id="after_skip")
    run = d.test(logical_date=DAY)
    t = tis(run)
    assert (t["fail"].state, t["fail"].try_number) == (TI.FAILED, 1)
    assert (t["skip"].state, t["skip"].try_number) == (TI.SKIPPED, 1)
    assert (t["after_fail"].state, t["after_fail"].try_number) == (TI.UPSTREAM_FAILED, 0)
    assert (t["after_skip"].state, t["after_skip"].try_number) == (TI.SKIPPED, 0)


def test_execution_timeout():
    with new_dag("timeout") as d:
        PythonOperator(task_id="slow", python_callable=lambda: time.sleep(5),
                       execution_timeout=timedelta(seconds=0.3))
        BashOperator(task_id="slow_bash", bash_command="sleep 5",
                     execution_timeout=timedelta(seconds=0.3))
    started = time.monotonic()
    run = d.test(logical_date=DAY)
    assert time.monotonic() - started < 4
    assert states(run) == {"slow": TI.FAILED, "slow_bash": TI.FAILED}


def test_multiple_outputs():
    with new_dag("multi") as d:
        @task(multiple_outputs=True)
        def pair():
            return {"left": 1, "right": 2}

        @task
        def inferred() -> dict[str, str]:
            return {"k": "v"}

        @task
        def use(left, right, k):
            return [left, right, k]

        p = pair()
        use(p["left"], p["right"], inferred()["k"])
    run = d.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "pair", key="left") == 1
    assert xcom(run, "pair") == {"left": 1, "right": 2}
    assert xcom(run, "use") == [1, 2, "v"]


# -- dynamic task mapping --------------------------------------------------------------------

def test_mapping_over_literals_and_reduce():
    with new_dag("maplit") as d:
        @task
        def double(x):
            return x * 2

        @task
        def total(values):
            return sorted(values)

        total(double.expand(x=[1, 2, 3]))
    run = d.test(logical_date=DAY)
    s = tis(run)
    assert {k: v.state for k, v in s.items() if isinstance(k, tuple)} == {
        ("double", 0): TI.SUCCESS, ("double", 1): TI.SUCCESS, ("double", 2): TI.SUCCESS}
    assert s[("double", 1)].try_number == 1
    assert xcom(run, "total") == [2, 4, 6]
    assert xcom(run, "double") == [2, 4, 6]


def test_mapping_over_upstream_xcom_cross_product_and_partial():
    with new_dag("mapx") as d:
        @task
        def numbers():
            return [1, 2]

        @task
        def mul(x, y, z):
            return x * y + z

        @task
        def collect(values):
            return sorted(values)

        collect(mul.partial(z=1000).expand(x=numbers(), y=[10, 100]))
    run = d.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert len([k for k in tis(run) if isinstance(k, tuple) and k[0] == "mul"]) == 4
    assert xcom(run, "collect") == [1010, 1020, 1100, 1200]


def test_expand_kwargs():
    with new_dag("mapkw") as d:
        @task
        def add(a, b):
            return a + b

        @task
        def args():
            return [{"a": 1, "b": 2}, {"a": 10, "b": 20}]

        add.expand_kwargs([{"a": 1, "b": 1}])
        add.override(task_id="from_xcom").expand_kwargs(args())
    run = d.test(logical_date=DAY)
    assert xcom(run, "add") == [2]
    assert xcom(run, "from_xcom") == [3, 30]


def test_mapping_over_empty_list_skips():
    with new_dag("mapempty") as d:
        @task
        def nothing():
            return []

        @task
        def each(x):
            return x

        @task
        def after(values):
            return values

        after(each.expand(x=nothing()))
    run = d.test(logical_date=DAY)
    s = tis(run)
    assert (s["each"].state, s["each"].try_number) == (TI.SKIPPED, 0)
    assert s["after"].state == TI.SKIPPED
    assert run.state == DagRunState.SUCCESS


def test_classic_operator_partial_expand():
    with new_dag("mapbash") as d:
        BashOperator.partial(task_id="b", env={"P": "p"}).expand(
            bash_command=["echo one $P", "echo two $P"])
    run = d.test(logical_date=DAY)
    assert states(run) == {("b", 0): TI.SUCCESS, ("b", 1): TI.SUCCESS}
    assert xcom(run, "b") == ["one p", "two p"]


def test_mapped_task_failure_fails_downstream():
    with new_dag("mapfail") as d:
        @task
        def check(x):
            if x == 2:
                raise ValueError("bad item")
            return x

        check.expand(x=[1, 2, 3]) >> EmptyOperator(task_id="after")
    run = d.test(logical_date=DAY)
    s = states(run)
    assert s[("check", 1)] == TI.FAILED
    assert s[("check", 0)] == TI.SUCCESS
    assert s["after"] == TI.UPSTREAM_FAILED
    assert run.state == DagRunState.FAILED


# -- depends_on_past -------------------------------------------------------------------------

def test_depends_on_past_across_runs():
    outcome = {"fail": True}

    def maybe_fail():
        if outcome["fail"]:
            raise RuntimeError("first day fails")

    with new_dag("dop", schedule="@daily") as d:
        PythonOperator(task_id="t", python_callable=maybe_fail, depends_on_past=True)
    first = d.test(logical_date=datetime(2024, 1, 1, tzinfo=UTC))
    assert states(first)["t"] == TI.FAILED
    outcome["fail"] = False
    second = d.test(logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    t = tis(second)["t"]
    assert (t.state, t.try_number) == (TI.NONE, 0)
    assert second.state == DagRunState.FAILED
    # Re-run the first day successfully: the next day may now run.
    d.test(logical_date=datetime(2024, 1, 1, tzinfo=UTC))
    third = d.test(logical_date=datetime(2024, 1, 2, tzinfo=UTC))
    assert states(third)["t"] == TI.SUCCESS
    assert third.state == DagRunState.SUCCESS


# -- callbacks -------------------------------------------------------------------------------

def test_task_and_dag_callbacks():
    events = []

    def record(name):
        def callback(context):
            events.append((name, context["ti"].task_id if "ti" in context else None,
                           context.get("exception").__class__.__name__
                           if context.get("exception") else None))
        return callback

    def dag_callback(name):
        return lambda context: events.append((name, context["dag_run"].run_id,
                                              context["dag"].dag_id))

    def boom():
        raise KeyError("x")

    with new_dag("cb", on_success_callback=dag_callback("dag_success"),
                 on_failure_callback=dag_callback("dag_failure")) as d:
        PythonOperator(task_id="ok", python_callable=lambda: 1,
                       on_success_callback=record("success"))
        PythonOperator(task_id="bad", python_callable=boom, retries=1, retry_delay=NO_DELAY,
                       on_retry_callback=record("retry"), on_failure_callback=record("failure"))
    run = d.test(logical_date=DAY)
    assert ("success", "ok", None) in events
    assert ("retry", "bad", "KeyError") in events
    assert ("failure", "bad", "KeyError") in events
    assert events[-1] == ("dag_failure", run.run_id, "cb")
    assert not any(e[0] == "dag_success" for e in events)

    events.clear()
    with new_dag("cbok", on_success_callback=dag_callback("dag_success")) as d2:
        EmptyOperator(task_id="a")
    run2 = d2.test(logical_date=DAY)
    assert events == [("dag_success", run2.run_id, "cbok")]


# -- templating and params -----------------------------------------------------------------

def test_templating_context_macros_and_variables():
    Variable.set("greeting", "hello")
    with new_dag("tmpl", schedule="@daily", params={"p": 7}) as d:
        BashOperator(task_id="b", bash_command=(
            "echo '{{ ds }}|{{ ts }}|{{ params.p }}|{{ macros.ds_add(ds, 1) }}|"
            "{{ var.value.greeting }}|{{ ds_nodash }}|{{ dag.dag_id }}|{{ task.task_id }}'"))
    run = d.test(logical_date=DAY)
    assert xcom(run, "b") == (
        "2024-01-02|2024-01-02T00:00:00+00:00|7|2024-01-03|hello|20240102|tmpl|b")


def test_params_conf_override_and_validation():
    seen = []
    with new_dag("params", params={"n": Param(5, type="integer", minimum=1),
                                   "name": "x"}) as d:
        @task
        def show(params=None):
            seen.append(dict(params))

        show()
    run = d.test(logical_date=DAY, run_conf={"n": 7})
    assert run.state == DagRunState.SUCCESS
    assert seen[-1]["n"] == 7 and seen[-1]["name"] == "x"
    assert run.conf == {"n": 7}
    d.test(logical_date=datetime(2024, 1, 3, tzinfo=UTC))
    assert seen[-1]["n"] == 5
    with pytest.raises(ParamValidationError, match="n"):
        d.test(logical_date=datetime(2024, 1, 4, tzinfo=UTC), run_conf={"n": 0})
    assert len(seen) == 2


def test_dag_decorator_param_passed_to_task():
    from updraft import dag

    @dag(start_date=START, schedule=None)
    def with_param(count: int = 2):
        @task
        def times(n):
            return n * 3

        times(count)

    d = with_param()
    assert xcom(d.test(logical_date=DAY), "times") == 6
    assert xcom(d.test(logical_date=DAY, run_conf={"count": 5}), "times") == 15


# -- setup / teardown, fail_stop ------------------------------------------------------------------

def _setup_teardown_dag(dag_id, work_fails=False, teardown_fails=False, fail_dagrun=False):
    with new_dag(dag_id) as d:
        @setup
        def create():
            return "resource"

        @task
        def work():
            if work_fails:
                raise RuntimeError("work failed")

        @teardown(on_failure_fail_dagrun=fail_dagrun)
        def delete():
            if teardown_fails:
                raise RuntimeError("teardown failed")

        s = create()
        s >> work() >> delete().as_teardown(setups=s)
    return d


def test_teardown_runs_after_failure_and_run_fails():
    run = _setup_teardown_dag("st_fail", work_fails=True).test(logical_date=DAY)
    assert states(run) == {"create": TI.SUCCESS, "work": TI.FAILED, "delete": TI.SUCCESS}
    assert run.state == DagRunState.FAILED


def test_teardown_failure_is_ignored_unless_asked():
    run = _setup_teardown_dag("st_td", teardown_fails=True).test(logical_date=DAY)
    assert states(run)["delete"] == TI.FAILED
    assert run.state == DagRunState.SUCCESS
    run = _setup_teardown_dag("st_td2", teardown_fails=True, fail_dagrun=True).test(
        logical_date=DAY)
    assert run.state == DagRunState.FAILED


def test_teardown_skipped_when_setup_skipped():
    with new_dag("st_skip") as d:
        s = PythonOperator(task_id="s", python_callable=lambda: (_ for _ in ()).throw(
            UpdraftSkipException("no")))
        w = EmptyOperator(task_id="w")
        t = EmptyOperator(task_id="t")
        s >> w >> t.as_teardown(setups=s)
    run = d.test(logical_date=DAY)
    assert states(run) == {"s": TI.SKIPPED, "w": TI.SKIPPED, "t": TI.SKIPPED}


def test_fail_stop():
    def boom():
        raise RuntimeError("stop everything")

    with new_dag("failstop", fail_stop=True) as d:
        PythonOperator(task_id="a", python_callable=boom)
        # b is queued in the same batch as a: fail_stop must skip it before it starts.
        EmptyOperator(task_id="b") >> EmptyOperator(task_id="e")
    run = d.test(logical_date=DAY)
    s = states(run)
    assert s == {"a": TI.FAILED, "b": TI.SKIPPED, "e": TI.SKIPPED}
    assert run.state == DagRunState.FAILED


# -- XComs ----------------------------------------------------------------------------------

def test_xcom_pull_several_tasks_and_custom_key():
    pulled = {}

    def push(ti):
        ti.xcom_push(key="custom", value={"v": 1})
        return "a-result"

    def pull(ti):
        pulled["many"] = ti.xcom_pull(task_ids=["b", "a"])
        pulled["one"] = ti.xcom_pull(task_ids="a")
        pulled["custom"] = ti.xcom_pull(task_ids="a", key="custom")
        pulled["missing"] = ti.xcom_pull(task_ids="a", key="nope")

    with new_dag("xcoms") as d:
        a = PythonOperator(task_id="a", python_callable=push)
        b = PythonOperator(task_id="b", python_callable=lambda: 2)
        [a, b] >> PythonOperator(task_id="c", python_callable=pull)
    run = d.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert pulled == {"many": [2, "a-result"], "one": "a-result", "custom": {"v": 1},
                      "missing": None}


def test_do_xcom_push_false():
    with new_dag("noxcom") as d:
        BashOperator(task_id="b", bash_command="echo hidden", do_xcom_push=False)
    assert xcom(d.test(logical_date=DAY), "b") is None


# -- logs -----------------------------------------------------------------------------------

def test_logs_per_try_with_print_output_and_masked_secret(updraft_home):
    from updraft.secrets import clear_masks

    Variable.set("db_password", "s3cr3t-value")
    clear_masks()  # the worker must mask it itself when the task reads it
    attempts = {"n": 0}

    def noisy():
        attempts["n"] += 1
        secret = Variable.get("db_password")
        print(f"attempt {attempts['n']} uses {secret}")
        if attempts["n"] == 1:
            raise RuntimeError("first try fails")

    with new_dag("logs") as d:
        PythonOperator(task_id="noisy", python_callable=noisy, retries=1, retry_delay=NO_DELAY)
    run = d.test(logical_date=DAY)
    assert states(run)["noisy"] == TI.SUCCESS
    base = updraft_home / "logs" / "dag_id=logs" / f"run_id={run.run_id}" / "task_id=noisy"
    first, second = (base / "attempt=1.log").read_text(), (base / "attempt=2.log").read_text()
    assert "attempt 1 uses ***" in first and "first try fails" in first
    assert "attempt 2 uses ***" in second and "attempt 1" not in second
    assert "s3cr3t-value" not in first + second


# -- the runner's compare-and-set ------------------------------------------------------------

def test_run_task_try_records_a_try_once(updraft_home):
    from sqlalchemy import func, select, update

    from updraft.runtime import TryRequest, run_task_try
    from updraft.state import DagRunType
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel, TaskInstanceTry
    from updraft.store.runs import create_dag_run, queue_task_instances, row_defaults_for

    ran = []
    with new_dag("cas") as d:
        PythonOperator(task_id="t", python_callable=lambda: ran.append(1) or "done")
    with session_scope() as session:
        create_dag_run(session, dag_id="cas", run_id="r1", run_type=DagRunType.MANUAL,
                       logical_date=DAY, data_interval=(DAY, DAY), conf={},
                       tasks=row_defaults_for(d.task_dict), state=DagRunState.RUNNING)
        queued = queue_task_instances(session, "cas", "r1", [("t", -1)])
    assert queued[("t", -1)].try_number == 1
    request = TryRequest("cas", "r1", "t", -1, 1, d.fileloc, try_id=queued[("t", -1)].try_id)
    first = run_task_try(request, d)
    second = run_task_try(request, d)
    assert (first.state, first.refused) == (TI.SUCCESS, False)
    assert second.refused and second.state is None
    assert ran == [1]
    with session_scope() as session:
        tries = session.scalar(select(func.count()).select_from(TaskInstanceTry).where(
            TaskInstanceTry.dag_id == "cas"))
        row = session.scalar(select(TaskInstanceModel).where(TaskInstanceModel.dag_id == "cas"))
        assert tries == 1
        assert (row.state, row.try_number) == ("success", 1)
    stale = run_task_try(TryRequest("cas", "r1", "t", -1, 2, d.fileloc), d)
    assert stale.refused
    # A request for the right try number but another queueing of it is refused too (ADR 2).
    with session_scope() as session:
        session.execute(update(TaskInstanceModel).where(TaskInstanceModel.dag_id == "cas")
                        .values(state="queued", try_number=2, try_id="a" * 32))
    wrong_id = run_task_try(TryRequest("cas", "r1", "t", -1, 2, d.fileloc, try_id="b" * 32), d)
    assert wrong_id.refused and ran == [1]
    assert os.path.exists(first.log_path)


# -- more end-to-end rules ---------------------------------------------------------------------

def test_task_params_override_dag_params_and_conf_overrides_both():
    seen = {}
    with new_dag("tparams", params={"a": 1, "b": 1}) as d:
        PythonOperator(task_id="t", params={"b": 2, "c": 3},
                       python_callable=lambda params: seen.update(params))
    d.test(logical_date=DAY, run_conf={"c": 30})
    assert (seen["a"], seen["b"], seen["c"]) == (1, 2, 30)


def test_one_failed_ignores_a_try_that_is_retried():
    attempts = {"n": 0}

    def flaky():
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("first try")

    with new_dag("onefailed") as d:
        a = PythonOperator(task_id="a", python_callable=flaky, retries=1, retry_delay=NO_DELAY)
        a >> EmptyOperator(task_id="alert", trigger_rule="one_failed")
        a >> EmptyOperator(task_id="cleanup", trigger_rule="all_done")
    run = d.test(logical_date=DAY)
    t = tis(run)
    assert (t["a"].state, t["a"].try_number) == (TI.SUCCESS, 2)
    assert (t["alert"].state, t["alert"].try_number) == (TI.SKIPPED, 0)
    assert t["cleanup"].state == TI.SUCCESS
    assert run.state == DagRunState.SUCCESS


def test_mapping_inside_task_group_with_reduce():
    with new_dag("mapgroup") as d:
        @task
        def inc(x):
            return x + 1

        @task
        def total(values):
            return sum(values)

        with TaskGroup("g"):
            total(inc.expand(x=[1, 2]))
    run = d.test(logical_date=DAY)
    assert states(run) == {("g.inc", 0): TI.SUCCESS, ("g.inc", 1): TI.SUCCESS,
                           "g.total": TI.SUCCESS}
    assert xcom(run, "g.total") == 5


def test_multiple_outputs_with_non_dict_fails():
    with new_dag("monodict") as d:
        @task(multiple_outputs=True)
        def bad():
            return [1, 2]

        bad()
    run = d.test(logical_date=DAY)
    assert states(run) == {"bad": TI.FAILED}


def test_string_logical_date_and_run_id():
    with new_dag("strdate", schedule="@daily") as d:
        EmptyOperator(task_id="a")
    run = d.test(logical_date="2024-03-05")
    assert run.logical_date.date().isoformat() == "2024-03-05"
    assert run.run_id.startswith("manual__2024-03-05")
