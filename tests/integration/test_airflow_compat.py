"""Airflow DAG files run unchanged: the corpus in tests/compat_dags (Airflow 2 and Airflow 3
import paths) loads through the DagBag with the compat import hook and runs with
``dag.test()`` with Airflow's outcomes; unsupported features fail precisely; check-compat."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from updraft import compat
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI

CORPUS = Path(__file__).resolve().parent.parent / "compat_dags"
DAY = datetime(2024, 1, 2, tzinfo=UTC)
UNSUPPORTED_FILES = {
    # file: (line of the offending statement, what the message names)
    "unsupported_kubernetes.py": (5, "airflow.providers.cncf.kubernetes.operators.pod"),
    "unsupported_asset_partitions.py": (5, "airflow.sdk.PartitionedAssetTimetable"),
}


def supported_files() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.py")
                  if p.name not in UNSUPPORTED_FILES)


@pytest.fixture(autouse=True)
def compat_hook():
    """The hook is installed by the DagBag; take it out after each test."""
    yield
    compat.uninstall()
    assert "airflow" not in sys.modules


@pytest.fixture(autouse=True)
def airflow_env(monkeypatch, updraft_home, _sqlite_template):
    """A migrated SQLite store, and the variables and connection the corpus reads."""
    shutil.copyfile(_sqlite_template, updraft_home / "updraft.db")
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOY_ENV", "staging")
    monkeypatch.setenv("AIRFLOW_VAR_COMPAT_SETTINGS", '{"batch": 5}')
    monkeypatch.setenv("AIRFLOW_CONN_COMPAT_SQLITE", f"sqlite:///{updraft_home / 'compat.db'}")
    return updraft_home


@pytest.fixture
def bag():
    from updraft.dagbag import DagBag

    return DagBag(dag_folder=CORPUS, include_examples=False)


def states(run) -> dict:
    return {(t.task_id if t.map_index < 0 else (t.task_id, t.map_index)): (t.state, t.try_number)
            for t in run.get_task_instances()}


def xcom(run, task_id, key="return_value"):
    return run.get_task_instances()[0].xcom_pull(task_ids=task_id, key=key)


def test_corpus_has_both_airflow_generations():
    files = [p.read_text() for p in CORPUS.glob("*.py")]
    assert sum("from airflow.sdk import" in f for f in files) >= 5
    assert sum("from airflow import DAG" in f or "from airflow.decorators" in f
               for f in files) >= 6


def test_supported_files_load_without_import_errors(bag):
    loaded = {Path(bag.dags[d].fileloc).name for d in bag.dags}
    for name in supported_files():
        assert str(CORPUS / name) not in bag.import_errors, bag.import_errors[str(CORPUS / name)]
        assert name in loaded
    assert compat.is_installed()


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_FILES))
def test_unsupported_files_fail_with_the_precise_message(bag, name):
    line, what = UNSUPPORTED_FILES[name]
    error = bag.import_errors[str(CORPUS / name)]
    last = error.strip().splitlines()[-1]
    assert re.search(rf"not supported by Updraft: {re.escape(what)}.*, in "
                     rf"{re.escape(str(CORPUS / name))}:{line}$", last), last
    assert not any(Path(d.fileloc).name == name for d in bag.dags.values())


def test_a2_etl_python_bash(bag):
    run = bag.get_dag("a2_etl_python_bash").test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "extract") == {"rows": [1, 2, 3]}
    assert xcom(run, "extract", key="row_count") == 42
    assert xcom(run, "transform") == {"total": 6, "count": 42, "ds": "2024-01-02"}
    assert xcom(run, "report") == "total=6 on 2024-01-02"
    assert bag.get_dag("a2_etl_python_bash").get_task("extract").owner == "data-eng"


def test_a2_branching(bag):
    dag = bag.get_dag("a2_branching")
    run = dag.test(logical_date=DAY)
    assert states(run) == {"start": (TI.SUCCESS, 1), "branch": (TI.SUCCESS, 1),
                           "small_path": (TI.SUCCESS, 1), "big_path": (TI.SKIPPED, 0),
                           "join": (TI.SUCCESS, 1)}
    run = dag.test(logical_date=datetime(2024, 1, 3, tzinfo=UTC), run_conf={"big": True})
    assert states(run)["big_path"] == (TI.SUCCESS, 1)
    assert states(run)["small_path"] == (TI.SKIPPED, 0)


def test_a2_retries_skip(bag):
    run = bag.get_dag("a2_retries_skip").test(logical_date=DAY)
    assert states(run) == {
        "flaky": (TI.SUCCESS, 2),         # failed once, retried (retries from default_args)
        "maybe_skip": (TI.SKIPPED, 1),    # AirflowSkipException
        "after_skip": (TI.SKIPPED, 0),
        "hard_fail": (TI.FAILED, 1),      # AirflowFailException: no retry
        "cleanup": (TI.SUCCESS, 1),       # all_done
    }
    assert xcom(run, "flaky") == 2
    assert run.state == DagRunState.SUCCESS  # the only leaf succeeded


def test_a2_variables_taskgroup(bag):
    dag = bag.get_dag("a2_variables_taskgroup")
    assert set(dag.task_ids) == {"begin", "read_config", "load.load_users", "load.load_orders",
                                 "end"}
    run = dag.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "read_config") == {"env": "staging", "batch": 5, "missing": "fallback"}
    assert xcom(run, "load.load_users") == "users in staging"


def test_a2_taskflow(bag):
    run = bag.get_dag("a2_taskflow").test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert states(run)[("scale", 2)] == (TI.SUCCESS, 1)
    assert xcom(run, "total") == 60
    assert xcom(run, "report.shout") == "TOTAL=60"


def test_a2_legacy_paths(bag):
    run = bag.get_dag("a2_legacy_paths").test(logical_date=DAY)
    assert states(run) == {"is_weekday": (TI.SUCCESS, 1), "skipped_a": (TI.SKIPPED, 0),
                           "skipped_b": (TI.SKIPPED, 0), "independent": (TI.SUCCESS, 1),
                           "sink_1": (TI.SUCCESS, 1), "sink_2": (TI.SUCCESS, 1)}
    assert xcom(run, "is_weekday") is False


def test_a3_taskflow_etl(bag):
    dag = bag.get_dag("a3_taskflow_etl")
    run = dag.test(logical_date=DAY)
    assert xcom(run, "transform", key="total_order_value") == 2473.4
    assert xcom(run, "load") == "3/3 orders, total 2473.40"
    run = dag.test(logical_date=datetime(2024, 1, 3, tzinfo=UTC), run_conf={"multiplier": 1})
    assert xcom(run, "load") == "3/3 orders, total 1236.70"


def test_a3_mapping(bag):
    run = bag.get_dag("a3_mapping").test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "collect") == [11, 12, 13]
    assert xcom(run, "collect_kwargs") == [3, 7]
    assert states(run)[("echo", 1)] == (TI.SUCCESS, 1)
    assert xcom(run, "echo") == ["one", "two"]


def test_a3_branch_groups(bag):
    dag = bag.get_dag("a3_branch_groups")
    assert dag.get_edge_info("pick", "odd") == {"label": "odd day"}
    run = dag.test(logical_date=DAY)  # an even day
    assert states(run) == {"start": (TI.SUCCESS, 1), "pick": (TI.SUCCESS, 1),
                           "even_group.first": (TI.SUCCESS, 1),
                           "even_group.second": (TI.SUCCESS, 1), "odd": (TI.SKIPPED, 0),
                           "join": (TI.SUCCESS, 1)}
    assert xcom(run, "even_group.second") == "even-1+2"
    run = dag.test(logical_date=datetime(2024, 1, 3, tzinfo=UTC))
    assert states(run)["odd"] == (TI.SUCCESS, 1)
    assert states(run)["even_group.first"] == (TI.SKIPPED, 0)
    assert states(run)["join"] == (TI.SUCCESS, 1)


def test_a3_sql_sqlite_with_airflow_conn_env(bag):
    run = bag.get_dag("a3_sql_sqlite").test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert [list(row) for row in xcom(run, "select")] == [[1, 10.5], [2, 4.5]]
    assert xcom(run, "total") == 15.0


def test_a3_setup_teardown_params(bag):
    dag = bag.get_dag("a3_setup_teardown_params")
    run = dag.test(logical_date=DAY, run_conf={"who": "me"})
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "greet") == "hello world x3 (me)"
    assert xcom(run, "repeat") == ["world", "world"]
    assert xcom(run, "delete_resource") == "deleted resource-1"
    assert xcom(run, "delete_after_work") == "deleted resource-1"
    assert dag.get_task("delete_resource").is_teardown
    from updraft.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        dag.test(logical_date=datetime(2024, 1, 3, tzinfo=UTC), run_conf={"count": 11})


def test_a3_common_compat(bag):
    run = bag.get_dag("a3_common_compat").test(logical_date=DAY)
    assert states(run) == {"hello": (TI.SUCCESS, 1), "skipped": (TI.SKIPPED, 1),
                           "summary": (TI.SUCCESS, 1)}
    assert xcom(run, "hello") == "hello 2024-01-02"
    assert xcom(run, "summary") == len("hello 2024-01-02")


# -- the import hook itself ----------------------------------------------------------------

def test_airflow_exceptions_are_updraft_exceptions():
    compat.install()
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
    from airflow.sdk.exceptions import AirflowSkipException as SdkSkip

    from updraft.exceptions import UpdraftException, UpdraftFailException, UpdraftSkipException

    assert AirflowSkipException is UpdraftSkipException is SdkSkip
    assert AirflowException is UpdraftException
    assert issubclass(AirflowFailException, AirflowException)
    with pytest.raises(AirflowFailException):
        raise UpdraftFailException("x")
    assert issubclass(AirflowSensorTimeout, AirflowException)


def test_unknown_names_and_modules_are_refused_at_the_import_line(tmp_path):
    compat.install()
    cases = {
        "from airflow.operators.python import PythonVirtualenvOperator":
            "airflow.operators.python.PythonVirtualenvOperator",
        "from airflow.sdk import PartitionedAssetTimetable":
            "airflow.sdk.PartitionedAssetTimetable",
        "import airflow.providers.amazon.aws.operators.s3":
            "airflow.providers.amazon.aws.operators.s3 (the amazon provider",
        "from airflow.models.pool import Pool": "airflow.models.pool",
        "from airflow.sdk import ObjectStoragePath": "airflow.sdk.ObjectStoragePath",
        "from airflow.timetables.events import EventsTimetable": "airflow.timetables.events",
        "from airflow.operators.bash import NoSuchOperator": "airflow.operators.bash.NoSuchOperator",
    }
    from updraft.exceptions import NotSupportedByUpdraft

    for statement, what in cases.items():
        path = tmp_path / "dag.py"
        code = compile("import os\n" + statement + "\n", str(path), "exec")
        with pytest.raises(ImportError) as info:
            exec(code, {})  # noqa: S102  (a DAG file's import statement, as the DagBag runs it)
        assert isinstance(info.value, NotSupportedByUpdraft)
        message = str(info.value)
        assert message.startswith(f"not supported by Updraft: {what}"), message
        assert message.endswith(f", in {path}:2"), message


def test_guarded_imports_fall_back_as_on_airflow_without_the_provider():
    compat.install()
    namespace: dict = {}
    guarded = ("try:\n    from airflow.providers.amazon.aws.hooks.s3 import S3Hook\n"
               "except ImportError:\n    S3Hook = None\n")
    exec(guarded, namespace)  # noqa: S102
    assert namespace["S3Hook"] is None


def test_airflow_3_and_2_paths_give_the_same_classes():
    compat.install()
    from airflow.models import DAG as DAG2
    from airflow.models import Variable as Variable2
    from airflow.models.baseoperator import chain as chain2
    from airflow.operators.bash import BashOperator as Bash2
    from airflow.operators.empty import EmptyOperator as Empty2
    from airflow.providers.common.compat.sdk import BaseOperator as CompatBase
    from airflow.providers.standard.operators.bash import BashOperator as Bash3
    from airflow.providers.standard.operators.empty import EmptyOperator as Empty3
    from airflow.sdk import DAG as DAG3
    from airflow.sdk import BaseOperator, chain
    from airflow.sdk import Variable as Variable3

    assert DAG2 is DAG3 and Bash2 is Bash3 and Empty2 is Empty3 and chain is chain2
    assert CompatBase is BaseOperator and Variable2 is Variable3
    import airflow

    assert airflow.__version__.startswith("3.")


def test_compat_off_makes_import_airflow_fail_normally(monkeypatch, tmp_path):
    from updraft.config import conf
    from updraft.dagbag import DagBag

    monkeypatch.setenv("UPDRAFT__CORE__AIRFLOW_COMPAT", "false")
    conf.reload()
    bag = DagBag(dag_folder=CORPUS / "a3_mapping.py", include_examples=False, safe_mode=False)
    assert not compat.is_installed()
    error = bag.import_errors[str(CORPUS / "a3_mapping.py")]
    assert "ModuleNotFoundError: No module named 'airflow'" in error
    env = {**os.environ, "UPDRAFT__CORE__AIRFLOW_COMPAT": "false", "UPDRAFT_HOME": str(tmp_path)}
    script = ("from updraft.dagbag import DagBag\n"
              "DagBag(dag_folder='.', include_examples=False)\n"
              "import airflow\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'airflow'" in result.stderr


def test_deferrable_false_is_accepted_and_true_is_refused():
    from updraft import DAG
    from updraft.exceptions import NotSupportedByUpdraft
    from updraft.operators.empty import EmptyOperator

    with DAG("d", schedule=None) as dag:
        EmptyOperator(task_id="ok", deferrable=False)
        with pytest.raises(NotSupportedByUpdraft, match=r"deferrable=True on EmptyOperator "
                           r"'no' .*, in .*test_airflow_compat.py:\d+$"):
            EmptyOperator(task_id="no", deferrable=True)
    assert dag.task_ids == ["ok"]


# -- updraft dags check-compat ---------------------------------------------------------------

def run_cli(*args):
    from updraft.cli import main

    return CliRunner().invoke(main, ["dags", "check-compat", *args], catch_exceptions=False)


def test_check_compat_on_the_corpus():
    result = run_cli(str(CORPUS))
    assert result.exit_code == 1
    out = result.output
    total = len(list(CORPUS.glob("*.py")))
    bad = len(UNSUPPORTED_FILES)
    assert out.strip().splitlines()[-1] == (f"{total} files: {total - bad} fully supported, "
                                            f"{bad} with unsupported features")
    assert f"{CORPUS / 'a3_mapping.py'}: fully supported" in out
    assert "  ok   line 4: airflow.providers.standard.operators.bash.BashOperator" in out
    assert ("  NOT  line 5: airflow.providers.cncf.kubernetes.operators.pod: not supported by "
            "Updraft") in out
    assert "  NOT  line 5: airflow.sdk.PartitionedAssetTimetable: not supported by " \
        "Updraft" in out
    assert "  ok   line 5: airflow.sdk.Asset" in out
    assert "schedule=[orders]" not in out


def test_check_compat_exit_zero_when_all_supported_and_json():
    files = [str(CORPUS / name) for name in supported_files()]
    result = run_cli(*files)
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"{len(files)} files: {len(files)} fully supported, "
                                          "0 with unsupported features")
    result = run_cli("-o", "json", str(CORPUS / "unsupported_kubernetes.py"),
                     str(CORPUS / "a2_retries_skip.py"))
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["summary"] == {"files": 2, "fully_supported": 1, "with_unsupported": 1,
                               "text": "2 files: 1 fully supported, 1 with unsupported features"}
    by_path = {Path(f["path"]).name: f for f in data["files"]}
    [unsupported] = by_path["unsupported_kubernetes.py"]["unsupported"]
    assert unsupported["line"] == 5 and unsupported["supported"] is False
    assert unsupported["name"] == "airflow.providers.cncf.kubernetes.operators.pod"
    assert unsupported["reason"]
    assert {"line": 5, "name": "airflow.exceptions.AirflowFailException", "supported": True,
            "reason": ""} in by_path["a2_retries_skip.py"]["supported"]


def test_check_compat_flags_task_variants_and_module_attributes(tmp_path):
    dag_file = tmp_path / "d.py"
    dag_file.write_text(
        "import airflow.operators.python\n"
        "from airflow import models\n"
        "from airflow.decorators import task\n"
        "@task.virtualenv(requirements=['x'])\n"
        "def f(): pass\n"
        "@task.bash\n"
        "def g(): return 'echo'\n"
        "p = airflow.operators.python.PythonOperator\n"
        "q = models.Pool\n")
    result = run_cli(str(dag_file))
    assert result.exit_code == 1
    assert "NOT  line 4: @task.virtualenv" in result.output
    assert "@task.bash" not in result.output
    assert "ok   line 8: airflow.operators.python.PythonOperator" in result.output
    assert "NOT  line 9: airflow.models.Pool" in result.output


def test_every_name_the_map_serves_exists_in_updraft():
    import importlib

    from updraft.compat import airflow_map
    from updraft.compat.airflow_map import Unsupported

    missing = []
    for module, names in airflow_map.MODULES.items():
        for name, target in names.items():
            if isinstance(target, Unsupported):
                continue
            source, _, attr = target.partition(":")
            if attr and not hasattr(importlib.import_module(source), attr):
                missing.append(f"{module}.{name} -> {target}")
    for source in airflow_map.ALIASES.values():
        importlib.import_module(source)
    assert not missing
