"""Configuration: defaults, then ``$UPDRAFT_HOME/updraft.toml`` (or ``$UPDRAFT_CONFIG``), then
``UPDRAFT__SECTION__KEY`` environment variables, highest last.

``conf.get("core", "executor")`` returns the merged value, converted to the type of its default.
``reload()`` re-reads everything; tests call it after changing the environment.

Every setting Updraft reads is in ``DEFAULTS``. A key or section that is not there (a typo,
a setting of another tool) still works for code that asks for it by name, as Airflow's
custom sections do, but it is logged once per process as a warning naming the file or the
environment variable it came from and the closest known setting: a misspelt setting must
not be silently ignored.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, dict[str, Any]] = {
    "core": {
        "dags_folder": "",  # empty: $UPDRAFT_HOME/dags
        "executor": "dask",
        "parallelism": 32,
        "max_active_tasks_per_dag": 16,
        "max_active_runs_per_dag": 16,
        "dags_are_paused_at_creation": True,
        "load_examples": False,
        "default_timezone": "UTC",
        "dagbag_import_timeout": 30.0,
        "dag_discovery_safe_mode": True,
        "fernet_key": "",  # empty: generated once into $UPDRAFT_HOME/fernet.key
        "xcom_max_size": 1_048_576,
        "default_pool_slots": 128,
        "airflow_compat": True,
        "default_retry_delay": 300,
        "max_retry_delay": 86400,
        "hide_sensitive_var_conn_fields": True,
        "sensitive_var_conn_names": "",
        # "process": each try runs in a process of its own, forked from a warm zygote and
        # supervised from outside (contained, stoppable, limits enforced); "thread": in the
        # executor slot's thread, for trusted, very short tasks (see README).
        "task_isolation": "process",
        # Seconds a stopped try gets between SIGTERM (its on_kill() runs) and SIGKILL.
        "kill_grace_period": 5.0,
        # Python's GIL switch interval (seconds) in the scheduler and worker processes:
        # their threads mostly wait on sockets, and a thread woken by one waits up to this
        # long for another that computes. 0 keeps Python's default (0.005).
        "switch_interval": 0.001,
        # How many tries one try process may run, one after the other, when each leaves
        # nothing behind (1: a fresh process for every try; see README "Task isolation").
        "tries_per_process": 100,
        # Default memory limit of a try's process ("2GiB", "512MB"; empty: none); a task's
        # executor_config={"memory_limit": ...} overrides it.
        "task_memory_limit": "",
        # Folder of Airflow-style plugin files (AirflowPlugin classes); empty:
        # $UPDRAFT_HOME/plugins. Loaded by the nodes that use what the plugins register.
        "plugins_folder": "",
        # A task instance state change that the transition table in updraft/state.py
        # forbids raises instead of being logged and written (on in the tests).
        "validate_state_transitions": False,
        # Which code a run's tries execute (ADR 12): "pinned", the DAG bundle version the
        # run was created with (a DAG file edited mid-run changes only later runs);
        # "latest", the newest version the DAG processor recorded (ADR 5's old behaviour).
        "run_version_policy": "pinned",
        # Where a worker keeps the DAG bundle versions it fetched from the store; empty:
        # $UPDRAFT_HOME/bundle_cache.
        "bundle_cache_folder": "",
    },
    "database": {
        "sql_alchemy_conn": "",  # empty: sqlite:///$UPDRAFT_HOME/updraft.db
        "pool_size": 5,
        "echo": False,
        # Seconds a node waits, with backoff, for a store it cannot reach when it starts
        # (a database still starting); later outages are waited out for as long as they last.
        "connect_wait": 60.0,
    },
    "logging": {
        "base_log_folder": "",  # empty: $UPDRAFT_HOME/logs
        "level": "INFO",
        "live_logs": True,  # publish each task log line on P.log... when NATS is reachable
    },
    "scheduler": {
        "dag_dir_list_interval": 30.0,
        "min_file_process_interval": 30.0,
        "parsing_processes": 2,
        # Address space (RLIMIT_AS) of each DAG parsing process, in MB; 0: no limit. About
        # 60 MB of it is Updraft itself. A file that needs more fails with MemoryError.
        "parsing_memory_limit_mb": 0,
        "reconcile_interval": 5.0,
        # Seconds between two heartbeats of running tries (from their supervisors); a lost
        # worker's tries are failed once theirs are this late plus one second.
        "task_heartbeat_interval": 2.0,
        "zombie_threshold": 60.0,
        # Seconds without a heartbeat after which a scheduler counts as gone: another
        # scheduler then queues again the tries it had queued that no worker started.
        "scheduler_health_check_threshold": 30.0,
        # Tries of one task instance lost to a node failure (a dead worker, a zombie) that
        # run again without using a retry; beyond that the retry policy applies.
        "max_lost_tries": 3,
        "catchup_by_default": False,
        "metrics_port": 0,  # 0: no Prometheus endpoint; else served on 127.0.0.1:<port>
        "metrics_host": "127.0.0.1",
    },
    # ``updraft triggerer`` (ADR 11): how many triggers one process runs, how long its
    # lease on them lasts without renewal (a dead triggerer's triggers move to another
    # after this), and how long a trigger may hold the event loop before it is named.
    "triggerer": {
        "capacity": 1000,
        "lease_seconds": 6.0,
        "poll_interval": 1.0,
        "block_threshold": 0.2,
    },
    "dask": {
        "scheduler_address": "",  # empty: start a LocalCluster
        "n_workers": 2,
        "threads_per_worker": 4,
        "processes": True,
        "dashboard_address": "127.0.0.1:8787",
        # "subprocess": the Dask scheduler and workers run in their own processes (the
        # scheduler's event loop then does not share the Updraft scheduler's GIL);
        # "local": distributed.LocalCluster, whose scheduler runs in this process.
        "cluster": "subprocess",
        # Dask's statistical profiler samples every worker thread every 10 ms: it costs
        # CPU on every try. Turn on to see the dashboard's profile of the local cluster.
        "worker_profile": False,
        # When more tries are in flight than the cluster has threads, send up to this many
        # tries in one Dask task (they run one after the other): saves Dask's per-task
        # cost on short tries. 1: one Dask task per try, always.
        "max_bundle": 8,
        # Resources every worker of the cluster the executor starts declares, as Dask's
        # --resources takes them ("GPU=1,MEMORY=8e9"; a queue is "queue-<name>=1000").
        "worker_resources": "",
        # Seconds a try whose resources (executor_config={"resources": ...}, its queue) no
        # worker of the cluster has may wait for one to join before it fails with the
        # reason, under its retry policy.
        "resource_wait": 30.0,
        # Workers of the cluster the executor starts, adapted to the tries queued: at least
        # adapt_min, at most adapt_max (0: no adapting, n_workers always).
        "adapt_min": 0,
        "adapt_max": 0,
        # Seconds a worker must be idle before adapting retires it.
        "adapt_idle": 10.0,
        # Save Dask's performance report of each try that used the cluster beside its log.
        "performance_report": True,
    },
    "xcom": {
        # Where large values (Dask collections, pandas, numpy) go: "auto" (the Dask cluster
        # the try runs on, else object storage if a path is set), "cluster" or
        # "object_storage"; a task's executor_config={"xcom_backend": ...} overrides it.
        "large_value_backend": "auto",
        # fsspec URL of the object-storage backend's folder (file:///..., s3://bucket/x).
        "object_storage_path": "",
        # Seconds cluster data stays after its run ended (0: released when the run ends).
        "cluster_retention": 3600.0,
        # Seconds object-storage data stays after its run ended (0: while the store
        # refers to it).
        "object_storage_retention": 0.0,
        # Seconds between two passes of the reaper that releases data no longer used.
        "reap_interval": 10.0,
    },
    "worker": {  # `updraft worker`: the NATS queue executor's workers
        "queues": "default",
        "concurrency": 4,
        "ack_wait": 30.0,  # seconds before an unacked task message is redelivered
        "max_deliver": 3,  # deliveries of one task message before it is given up
        "in_progress_interval": 0.0,  # 0: ack_wait / 3
        # Seconds between heartbeats on NATS (the node row in the store is written every 5 s
        # at most); a worker silent for three intervals is reported lost.
        "heartbeat_interval": 1.0,
        # Seconds running tries get to finish after SIGTERM; then they are stopped and run
        # again without using a retry (the worker exits within ten seconds).
        "shutdown_grace": 2.0,
    },
    "nats": {
        "servers": "nats://127.0.0.1:4222",
        "subject_prefix": "updraft",
        # Replicas of Updraft's JetStream streams (triggers, asset events, task queues):
        # "auto" is min(3, servers in the cluster), so losing one server loses nothing;
        # a number forces it (bus/streams.py).
        "stream_replicas": "auto",
        "user": "",
        "password": "",
        "token": "",
        "nkeys_seed": "",
        "creds_file": "",
        "tls_ca": "",
        "tls_cert": "",
        "tls_key": "",
    },
    "web": {
        "host": "127.0.0.1",
        "port": 8080,
        "secret_key": "",  # empty: generated once into $UPDRAFT_HOME/web_secret.key
        "session_lifetime_minutes": 720,
        "cookie_secure": False,  # true behind HTTPS: the session cookie is sent over TLS only
        "command_timeout": 10.0,  # seconds the web waits for the scheduler's reply
    },
    "secrets": {
        # Secrets backends asked for variables and connections after the environment and
        # before the store: a list (TOML array, or JSON text in UPDRAFT__SECRETS__BACKENDS)
        # of names registered in updraft.secrets_backends or "module:Class" paths, each a
        # string or {backend = "...", kwargs = {...}} (Airflow's backend_kwargs).
        # None: no backends. Left untyped so a TOML array is kept as it is.
        "backends": None,
    },
    "smtp": {
        "host": "localhost",
        "port": 25,
        "starttls": False,
        "ssl": False,
        "user": "",
        "password": "",
        "mail_from": "updraft@localhost",
        "timeout": 30,
        "retry_limit": 5,
    },
}


#: Settings people write for what Updraft calls otherwise (Airflow's names, likely guesses).
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("nats", "url"): ("nats", "servers"),
    ("nats", "urls"): ("nats", "servers"),
    ("nats", "server"): ("nats", "servers"),
    ("nats", "prefix"): ("nats", "subject_prefix"),
    ("core", "sql_alchemy_conn"): ("database", "sql_alchemy_conn"),
    ("database", "url"): ("database", "sql_alchemy_conn"),
    ("database", "sql_alchemy_pool_size"): ("database", "pool_size"),
    ("webserver", "web_server_host"): ("web", "host"),
    ("webserver", "web_server_port"): ("web", "port"),
    ("webserver", "secret_key"): ("web", "secret_key"),
    ("logging", "logging_level"): ("logging", "level"),
    ("core", "base_log_folder"): ("logging", "base_log_folder"),
    ("celery", "worker_concurrency"): ("worker", "concurrency"),
    ("smtp", "smtp_host"): ("smtp", "host"),
    ("smtp", "smtp_port"): ("smtp", "port"),
    ("smtp", "smtp_user"): ("smtp", "user"),
    ("smtp", "smtp_password"): ("smtp", "password"),
    ("smtp", "smtp_mail_from"): ("smtp", "mail_from"),
    ("smtp", "smtp_starttls"): ("smtp", "starttls"),
    ("smtp", "smtp_ssl"): ("smtp", "ssl"),
}

_warned: set[tuple[str, str, str]] = set()


class ConfigError(ValueError):
    """A configuration value that is missing, unknown or of the wrong type."""


def env_name(section: str, key: str) -> str:
    """The environment variable that sets ``[section] key``."""
    return f"UPDRAFT__{section.upper()}__{key.upper()}"


def closest_setting(section: str, key: str) -> tuple[str, str] | None:
    """The known setting someone who wrote ``[section] key`` most likely meant, if any."""
    import difflib

    if (section, key) in RENAMED:
        return RENAMED[(section, key)]
    elsewhere = [s for s, keys in DEFAULTS.items() if key in keys]
    if elsewhere:
        return elsewhere[0], key
    if section in DEFAULTS:
        near = difflib.get_close_matches(key, list(DEFAULTS[section]), n=1, cutoff=0.6)
        if near:
            return section, near[0]
    known = {f"{s}.{k}": (s, k) for s, keys in DEFAULTS.items() for k in keys}
    near = difflib.get_close_matches(f"{section}.{key}", list(known), n=1, cutoff=0.75)
    if near:
        return known[near[0]]
    if section not in DEFAULTS:
        sections = difflib.get_close_matches(section, list(DEFAULTS), n=1, cutoff=0.6)
        if sections and key in DEFAULTS[sections[0]]:
            return sections[0], key
    return None


def _warn(message: str, *args: Any) -> None:
    # logging is imported here: `updraft --help` and every task import this module.
    import logging

    logging.getLogger("updraft.config").warning(message, *args)


def _warn_unknown(section: str, key: str, origin: str, from_env: bool) -> None:
    """Log once per process that ``[section] key`` (from ``origin``) is no Updraft setting."""
    marker = (origin, section, key)
    if marker in _warned:
        return
    _warned.add(marker)
    guess = closest_setting(section, key)
    hint = ""
    if guess is not None:
        hint = f"; did you mean [{guess[0]}] {guess[1]}"
        hint += f" ({env_name(*guess)})?" if from_env else "?"
    what = (f"Unknown section [{section}] ({key})" if section not in DEFAULTS
            else f"Unknown setting [{section}] {key}")
    _warn("%s in %s: no part of Updraft reads it%s", what, origin, hint)


def _unknown_keys(section: str, keys: dict[str, Any]) -> list[str]:
    known = DEFAULTS.get(section)
    if known is None:
        return list(keys)
    return [key for key in keys if key not in known]


def updraft_home() -> Path:
    """The folder that holds the SQLite store, logs, keys and the default DAGs folder."""
    return Path(os.environ.get("UPDRAFT_HOME") or Path.home() / "updraft").expanduser()


def _convert(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        # A TOML list for a setting whose default is text (``[nats] servers``): the
        # comma-separated form the environment variable takes, which every reader splits.
        return ",".join(item.strip() for item in value if item.strip())
    if not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: expected text or a list of texts, got {value!r}")
    return str(value)


class UpdraftConfig:
    """Merged configuration; read once, cheap to query."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, Any]] = {}
        self._memo: dict[str, tuple[tuple, Any]] = {}
        self.reload()

    def config_file(self) -> Path:
        """The TOML file read, whether or not it exists."""
        return Path(os.environ.get("UPDRAFT_CONFIG") or updraft_home() / "updraft.toml")

    def reload(self) -> None:
        """Re-read the file and the environment."""
        values = {section: dict(keys) for section, keys in DEFAULTS.items()}
        path = self.config_file()
        if path.exists():
            try:
                data = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: invalid TOML: {exc}") from None
            for section, keys in data.items():
                if not isinstance(keys, dict):
                    raise ConfigError(f"{path}: [{section}] must be a table")
                for key in _unknown_keys(section, keys):
                    _warn_unknown(section, key, str(path), from_env=False)
                target = values.setdefault(section, {})
                for key, value in keys.items():
                    default = DEFAULTS.get(section, {}).get(key)
                    where = f"{path} [{section}] {key}"
                    target[key] = value if default is None else _convert(value, default, where)
        for name, value in os.environ.items():
            if not name.startswith("UPDRAFT__"):
                continue
            parts = name[len("UPDRAFT__"):].lower().split("__", 1)
            if len(parts) != 2 or not all(parts):
                if (name, "", "") not in _warned:
                    _warned.add((name, "", ""))
                    _warn("%s is not of the form UPDRAFT__SECTION__KEY: no part of Updraft "
                          "reads it", name)
                continue
            section, key = parts
            if key not in DEFAULTS.get(section, {}):
                _warn_unknown(section, key, name, from_env=True)
            default = DEFAULTS.get(section, {}).get(key)
            target = values.setdefault(section, {})
            target[key] = value if default is None else _convert(value, default, name)
        self._values = values

    def get(self, section: str, key: str, fallback: Any = ...) -> Any:
        """Return the value of ``[section] key``; raise ConfigError if unset and no fallback."""
        try:
            return self._values[section][key]
        except KeyError:
            if fallback is not ...:
                return fallback
            raise ConfigError(f"unknown configuration option [{section}] {key}") from None

    def getint(self, section: str, key: str) -> int:
        return int(self.get(section, key))

    def getfloat(self, section: str, key: str) -> float:
        return float(self.get(section, key))

    def getboolean(self, section: str, key: str) -> bool:
        return bool(_convert(self.get(section, key), False, f"[{section}] {key}"))

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Every section and value (secrets included: do not print it as is)."""
        return {section: dict(keys) for section, keys in self._values.items()}

    # Paths derived from UPDRAFT_HOME when not set explicitly.

    def dags_folder(self) -> Path:
        return Path(self.get("core", "dags_folder") or updraft_home() / "dags").expanduser()

    def log_folder(self) -> Path:
        configured = self.get("logging", "base_log_folder")
        return self._derived("log_folder", configured, lambda: Path(
            configured or updraft_home() / "logs").expanduser())

    def sql_alchemy_conn(self) -> str:
        url = self.get("database", "sql_alchemy_conn")
        return url or self._derived("default_conn", None,
                                    lambda: f"sqlite:///{updraft_home() / 'updraft.db'}")

    def _derived(self, name: str, setting: Any, build: Callable[[], Any]) -> Any:
        """A value derived from ``setting`` and UPDRAFT_HOME, built once for each pair
        (log paths and the store URL are asked for on every try and store access)."""
        key = (setting, os.environ.get("UPDRAFT_HOME"))
        cached = self._memo.get(name)
        if cached is None or cached[0] != key:
            cached = self._memo[name] = (key, build())
        return cached[1]

conf = UpdraftConfig()
