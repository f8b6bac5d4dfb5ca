"""A third-party package extends Updraft through entry points only (``tests/sample_plugin``):
an executor, a timetable, a macro, a listener, a web view and a secrets backend, each shown
working end to end with real nodes (a real scheduler with the sample executor, the real Flask
app behind login), plus ``updraft plugins`` and broken extensions, and the notifiers against
a real SMTP server and a real NATS server.

The package is made visible without installing it (``plugin_helpers``: why).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import scheduler_helpers as h
import services
from plugin_helpers import (
    SAMPLE_PLUGIN,
    dist_info_from_pyproject,
    plugin_on_path,
    sample_plugin,
    write_dist_info,
)

pytestmark = pytest.mark.timeout(240)

PASSWORD = "a long enough password 42"
TOKEN = "s3cr3t-from-the-backend"
DB_PASSWORD = "pa55-from-the-backend"


@pytest.fixture
def sample(tmp_path):
    with sample_plugin(tmp_path) as dist_info:
        yield dist_info


@pytest.fixture
def store(updraft_home, _sqlite_template, monkeypatch):
    from updraft.config import conf

    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", url)
    conf.reload()
    return url


def _midnight(day: datetime) -> datetime:
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


SCHEDULED_DAG = '''
from datetime import datetime, UTC
from updraft import DAG
from updraft.operators.bash import BashOperator
from updraft_sample_plugin.timetable import EveryNDaysTimetable

with DAG("sample_scheduled", start_date=datetime.fromisoformat("{start}"), catchup=True,
         schedule=EveryNDaysTimetable(days=2, hour=6), max_active_runs=4) as dag:
    BashOperator(task_id="render", bash_command=(
        "echo shout={{{{ macros.sample.shout(ds) }}}} "
        "days={{{{ macros.sample.days_between(data_interval_start, data_interval_end) }}}} "
        "token={{{{ var.value.sample_api_token }}}}"))
'''

TRIGGERED_DAG = '''
from datetime import datetime
from updraft import DAG, task

with DAG("sample_triggered", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def use_secrets():
        from updraft.models.connection import Connection
        from updraft.models.variable import Variable

        conn = Connection.get_connection_from_secrets("sample_db")
        print(f"token={Variable.get('sample_api_token')} password={conn.password} "
              f"host={conn.host} env_wins={Variable.get('env_and_backend')} "
              f"store_only={Variable.get('only_in_store')}")

    @task
    def boom():
        raise ValueError("boom on purpose")

    use_secrets() >> boom()
'''


def _log(dag_id: str, run_id: str, task_id: str) -> str:
    from updraft.config import conf
    from updraft.tasklog import try_log_path

    return try_log_path(conf.log_folder(), dag_id, run_id, task_id, -1, 1).read_text()


def test_sample_package_through_a_real_scheduler(sample, store, tmp_path, monkeypatch):
    """The sample executor runs every try; the sample timetable's runs are created by the
    scheduler with its intervals; the sample macros render; the sample secrets backend's
    values reach the task and are masked in its log; the sample listener hears each try."""
    from updraft_sample_plugin.executor import RecordingExecutor

    from executors import executor_class
    from updraft.config import conf
    from updraft.models.variable import Variable

    dags = tmp_path / "dags"
    listener_log = tmp_path / "listener.jsonl"
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("SAMPLE_LISTENER_LOG", str(listener_log))
    monkeypatch.setenv("UPDRAFT_VAR_ENV_AND_BACKEND", "from-env")
    monkeypatch.setenv("UPDRAFT__SECRETS__BACKENDS", json.dumps([{
        "backend": "sample_dict",
        "kwargs": {"variables": {"sample_api_token": TOKEN, "env_and_backend": "from-backend"},
                   "connections": {"sample_db": f"postgresql://app:{DB_PASSWORD}@db.example"
                                                f":5432/app"}}}]))
    conf.reload()
    Variable.set("sample_api_token", "from-the-store")  # the backend comes first
    Variable.set("only_in_store", "kept-in-store")

    start = _midnight(datetime.now(UTC)) - timedelta(days=5)
    h.write_dag(dags, "sample_scheduled", SCHEDULED_DAG.format(start=start.isoformat()))
    h.write_dag(dags, "sample_triggered", TRIGGERED_DAG)
    assert executor_class("sample_recording") is RecordingExecutor
    RecordingExecutor.submitted.clear()

    with h.running_scheduler(dags, executor="sample_recording") as scheduler:
        h.wait_parsed("sample_triggered")
        run_id = h.trigger("sample_triggered")
        h.wait_run("sample_triggered", run_id)
        h.wait_for(lambda: len([r for r in h.runs("sample_scheduled")
                                if r.state in h.TERMINAL_RUN_STATES]) == 2,
                   what="the two due runs of sample_scheduled")
        assert scheduler.executor.name == "sample_recording"

    # The timetable: exactly the intervals that are due, each [start, start + 2 days).
    first = start + timedelta(hours=6)
    runs = h.runs("sample_scheduled")
    assert [(r.run_type, r.logical_date, r.data_interval_start, r.data_interval_end, r.state)
            for r in runs] == [
        ("scheduled", first, first, first + timedelta(days=2), "success"),
        ("scheduled", first + timedelta(days=2), first + timedelta(days=2),
         first + timedelta(days=4), "success")]
    row = h.dag_row("sample_scheduled")
    assert (row.next_dagrun, row.next_dagrun_data_interval_end, row.next_dagrun_create_after) \
        == (first + timedelta(days=4), first + timedelta(days=6), first + timedelta(days=6))

    # The macros and the masked backend value, in the rendered command's output.
    log = _log("sample_scheduled", runs[0].run_id, "render")
    assert f"shout={first:%Y-%m-%d}!" in log and "days=2" in log
    assert "token=***" in log and TOKEN not in log

    # The executor ran every try.
    triggered = h.tis("sample_triggered", run_id)
    assert {t.executor for t in [*triggered.values(),
                                 *h.tis("sample_scheduled", runs[0].run_id).values()]} \
        == {"sample_recording"}
    assert ("sample_triggered", "use_secrets") in RecordingExecutor.submitted

    # The secrets backend: env, then the backend, then the store; values masked.
    assert (triggered["use_secrets"].state, triggered["boom"].state) == ("success", "failed")
    log = _log("sample_triggered", run_id, "use_secrets")
    assert "token=*** password=*** host=db.example env_wins=from-env " \
           "store_only=kept-in-store" in log
    assert TOKEN not in log and DB_PASSWORD not in log and "from-the-store" not in log

    # The listener heard each try; the broken one was logged and changed nothing.
    heard = [json.loads(line) for line in listener_log.read_text().splitlines()]
    def story(task_id: str) -> list:
        return [(e["hook"], e["previous_state"], e["state"]) for e in heard
                if e.get("dag_id") == "sample_triggered" and e.get("task_id") == task_id]

    assert story("use_secrets") == [("on_task_instance_running", "queued", "running"),
                                    ("on_task_instance_success", "running", "success")]
    assert story("boom") == [("on_task_instance_running", "queued", "running"),
                             ("on_task_instance_failed", "running", "failed")]
    failed = next(e for e in heard if e["hook"] == "on_task_instance_failed")
    assert failed["error"] == "boom on purpose" and failed["run_id"] == run_id
    assert "sample_broken listener fails on purpose (success)" in log

    # Run-level hooks, called by the scheduler where the real runs changed state.
    runs_heard = [(e["hook"], e["run_id"]) for e in heard if e["hook"].startswith("on_dag_run")]
    assert runs_heard.index(("on_dag_run_running", run_id)) < \
        runs_heard.index(("on_dag_run_failed", run_id)), runs_heard
    assert ("on_dag_run_success", runs[0].run_id) in runs_heard, runs_heard
    succeeded = next(e for e in heard if e["hook"] == "on_dag_run_success")
    assert "succeeded" in succeeded["msg"], succeeded


def _login(client, username: str):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": token, "next": "/"})


def test_sample_web_view_behind_login_and_roles(sample, store):
    """The sample blueprint is served by the real app: anonymous callers go to the login page
    (401 on its REST endpoint), a Viewer gets 403, a User the page; the menu link shows in
    the navigation bar for those who may open it."""
    from updraft.store.engine import session_scope
    from web.app import create_app
    from web.auth.users import create_user

    with session_scope(store) as session:
        create_user(session, "watcher", PASSWORD, "Viewer")
        create_user(session, "worker", PASSWORD, "User")
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret-key"})

    anonymous = app.test_client()
    page = anonymous.get("/sample/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    api = anonymous.get("/api/sample/hello")
    assert api.status_code == 401

    viewer = app.test_client()
    assert _login(viewer, "watcher").status_code == 302
    refused = viewer.get("/sample/")
    assert refused.status_code == 403 and "needs User or above" in refused.get_data(as_text=True)
    assert "Plugins: Sample" not in viewer.get("/dags").get_data(as_text=True)

    user = app.test_client()
    assert _login(user, "worker").status_code == 302
    page = user.get("/sample/")
    assert page.status_code == 200
    assert "Sample plugin page" in page.get_data(as_text=True)
    assert "Hello worker" in page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"]  # the app's headers apply
    assert user.get("/api/sample/hello").get_json() == {"hello": "from the sample plugin"}
    nav = user.get("/dags").get_data(as_text=True)
    assert '<a href="/sample/" class="plugin-link">Plugins: Sample</a>' in nav


BROKEN_FOLDER_FILES = {
    "syntax_error.py": "def broken(:\n",
    "nameless.py": ("from airflow.plugins_manager import AirflowPlugin\n\n"
                    "class Nameless(AirflowPlugin):\n    pass\n"),
    "fastapi_only.py": ("from airflow.plugins_manager import AirflowPlugin\n\n"
                        "def shout(x):\n    return x.upper()\n\n"
                        "class Mixed(AirflowPlugin):\n    name = 'mixed'\n"
                        "    macros = [shout]\n    fastapi_apps = [{'app': None}]\n"),
}


def test_updraft_plugins_lists_sources_and_broken_extensions(tmp_path):
    """``updraft plugins`` (a real process) lists the sample package's extensions with their
    distribution, the plugins-folder plugins with their file, and each broken extension
    with its distribution, entry point (or file) and cause; exit code 1. The working
    extensions still load."""
    site = tmp_path / "site-packages"
    dist_info_from_pyproject(site, SAMPLE_PLUGIN)
    write_dist_info(site, "updraft-broken-plugin", "0.3", {
        "updraft.timetables": {"missing_module": "updraft_broken_missing:Nope"},
        "updraft.executors": {"not_a_class": "json:dumps",
                              "local": "updraft_broken_missing:Local"},
    })
    home = tmp_path / "home"
    plugins = home / "plugins"
    plugins.mkdir(parents=True)
    for name, text in BROKEN_FOLDER_FILES.items():
        (plugins / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPDRAFT")}
    env.update(UPDRAFT_HOME=str(home), PYTHONPATH=os.pathsep.join(
        [str(site), str(SAMPLE_PLUGIN / "src")]))
    updraft = str(Path(sys.executable).with_name("updraft"))
    result = subprocess.run([updraft, "plugins", "-o", "json"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_key = {(e["kind"], e["name"]): e for e in report["extensions"]}
    sample = by_key[("executors", "sample_recording")]
    assert sample["status"] == "ok" and sample["distribution"] == "updraft-sample-plugin"
    assert sample["source"] == ("entry point 'sample_recording' in group updraft.executors of "
                                "updraft-sample-plugin 1.0.0")
    for key in [("timetables", "sample_every_n_days"), ("macros", "sample"), ("web", "sample"),
                ("listeners", "sample_recorder"), ("secrets_backends", "sample_dict"),
                ("macros", "mixed"), ("executors", "local"), ("timetables", "cron")]:
        assert by_key[key]["status"] == "ok", by_key[key]
    assert by_key[("executors", "local")]["distribution"] == "updraft"  # Updraft's own wins
    assert report["plugins"] == [{"name": "mixed", "source": f"plugins folder: "
                                  f"{plugins / 'fastapi_only.py'} (plugin 'mixed')"}]

    errors = {(e["kind"], e["name"]): e for e in report["errors"]}
    missing = errors[("timetables", "missing_module")]
    assert missing["source"] == ("entry point 'missing_module' in group updraft.timetables of "
                                 "updraft-broken-plugin 0.3")
    assert missing["error"].startswith("ModuleNotFoundError: No module named "
                                       "'updraft_broken_missing'")
    assert "is not a class" in errors[("executors", "not_a_class")]["error"]
    assert "already registered by entry point 'local' in group updraft.executors of updraft" \
        in errors[("executors", "local")]["error"]
    assert errors[(None, "syntax_error")]["source"] == f"plugins folder: {plugins / 'syntax_error.py'}"
    assert errors[(None, "syntax_error")]["error"].startswith("SyntaxError")
    assert "has no name" in errors[(None, "Nameless")]["error"]
    assert "AirflowPlugin.fastapi_apps is not supported by Updraft" in errors[(None, "mixed")]["error"]


def test_a_broken_extension_never_takes_the_node_down(tmp_path, caplog):
    """In a node: the broken entry point is logged once with its name and cause, the other
    extensions of its kind load, and asking for it gives that same message."""
    from updraft.plugins import registry

    site = tmp_path / "site-packages"
    write_dist_info(site, "updraft-broken-plugin", "0.3", {
        "updraft.listeners": {"explodes": "updraft_broken_missing:listener"}})
    with plugin_on_path(site), caplog.at_level("ERROR", logger="updraft.plugins"):
        from updraft.listeners import call_hook

        assert call_hook("on_starting", component="test") == 0
        assert call_hook("on_starting", component="test") == 0
        with pytest.raises(registry.ExtensionError) as err:
            registry.load("listeners", "explodes")
        assert str(err.value) == (
            "cannot load listeners extension 'explodes' from entry point 'explodes' in group "
            "updraft.listeners of updraft-broken-plugin 0.3: ModuleNotFoundError: No module "
            "named 'updraft_broken_missing'")
        assert [r.getMessage() for r in caplog.records] == [str(err.value)]
        assert registry.load("executors", "local").__name__ == "LocalExecutor"


# -- notifiers ---------------------------------------------------------------------------------

NOTIFIED_DAG_START = datetime(2024, 1, 1, tzinfo=UTC)


def test_smtp_and_nats_notifiers_on_failure(monkeypatch, nats_url, updraft_home):
    """A failing task's on_failure_callback: the SMTP notifier mails a rendered subject
    through the configured server; the NATS notifier publishes JSON on a subject."""
    import asyncio

    import nats

    from updraft.config import conf
    from updraft.dag import DAG
    from updraft.notifications import NatsNotifier, SmtpNotifier, get_notifier
    from updraft.operators.python import PythonOperator

    collector, controller = services.start_smtp_server(monkeypatch)
    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", nats_url)
    conf.reload()
    subject = f"test.notify.{os.getpid()}.{id(collector)}"
    received: list = []

    async def listen_while(work):
        client = await nats.connect(nats_url)
        sub = await client.subscribe(subject)
        await client.flush()
        await asyncio.get_running_loop().run_in_executor(None, work)
        message = await sub.next_msg(timeout=10)
        received.append(json.loads(message.data))
        await client.close()

    def explode():
        raise ValueError("broken <on purpose>")

    with DAG("notified", start_date=NOTIFIED_DAG_START, schedule=None) as dag:
        PythonOperator(task_id="boom", python_callable=explode, on_failure_callback=[
            SmtpNotifier(to="ops@example.com", subject="{{ dag.dag_id }}.{{ ti.task_id }} failed"),
            NatsNotifier(subject=subject, message={"task": "{{ ti.task_id }}",
                                                   "error": "{{ exception }}"})])
    assert isinstance(get_notifier("nats", subject="x"), NatsNotifier)
    runs: list = []
    try:
        asyncio.run(listen_while(lambda: runs.append(
            dag.test(logical_date=datetime(2024, 3, 1, tzinfo=UTC)))))
    finally:
        controller.stop()
    assert str(runs[0].state) == "failed"
    ((_sender, rcpts, message),) = collector.messages
    assert message["Subject"] == "notified.boom failed" and rcpts == ["ops@example.com"]
    assert received == [{"task": "boom", "error": "broken <on purpose>"}]
