"""The OpenAPI 3.0 document of the REST API v1, kept in step with the routes.

The request-body schemas here are the ones the server enforces: ``web.api.common.json_body``
validates every body against ``SCHEMAS[name]`` (see ``request_validator``), so the document
cannot promise what the server refuses, nor accept what it forbids. Query parameters are
parsed by the helpers of ``web.api.common`` with the limits named here (``MAX_INT``...).

A test walks ``app.url_map`` and checks that every ``/api/v1`` route and method is here;
another fuzzes the API from this document with every schemathesis check on. When you add a
route, add it here.
"""

from __future__ import annotations

import copy
from typing import Any

from updraft.state import DagRunState, TaskInstanceState
from web.auth.users import USERNAME_MAX, USERNAME_PATTERN

#: The largest integer the store's INTEGER columns hold (offsets, map indexes, slots...).
MAX_INT = 2**31 - 1
#: How deep a JSON body (a run's conf) may nest.
MAX_JSON_DEPTH = 64

#: Printable ASCII with at least one non-blank character: variable keys, connection ids, pools.
NAME_PATTERN = r"^[ -~]*[!-~][ -~]*$"
#: Run ids: ASCII letters, digits and _ . : + ~ - or spaces, not starting with a dot or a
#: space (so never "." or "..", which URLs cannot carry).
RUN_ID_PATTERN = r"^[A-Za-z0-9_:+~-][A-Za-z0-9_.:+~ -]*$"
#: Dates a run may have: RFC 3339 with a year from 1900 to 9000 (schedules add intervals).
DATE_YEAR_PATTERN = r"^(19[0-9][0-9]|[2-8][0-9][0-9][0-9]|9000)-"

_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_INT = {"type": "integer"}
_NINT = {"type": "integer", "nullable": True}
_BOOL = {"type": "boolean"}
_DATE = {"type": "string", "format": "date-time", "nullable": True}
_NUM = {"type": "number", "nullable": True}
_OBJ = {"type": "object", "additionalProperties": True}


def _text(max_length: int | None = None, *, nullable: bool = True, **extra: Any) -> dict:
    schema: dict[str, Any] = {"type": "string"}
    if max_length is not None:
        schema["maxLength"] = max_length
    if nullable:
        schema["nullable"] = True
    schema.update(extra)
    return schema


#: A run's or task instance's note: set it, or remove it with "" or null.
_NOTE = _text(1000, description="the note (at most 1,000 characters; empty or null removes it)")
#: A backfill's first or last logical date.
_BACKFILL_DATE = {"type": "string", "format": "date-time", "pattern": DATE_YEAR_PATTERN,
                  "description": "a logical date: RFC 3339 with a timezone, years 1900 to 9000"}


def _name(max_length: int, what: str) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NAME_PATTERN,
            "description": f"{what}: 1 to {max_length} printable ASCII characters, not all "
                           "blank"}


_KEY = _name(250, "the variable's key")
_CONN_ID = _name(250, "the connection's id")
_POOL = _name(256, "the pool's name")
_USERNAME = {"type": "string", "minLength": 1, "maxLength": USERNAME_MAX,
             "pattern": USERNAME_PATTERN,
             "description": f"1 to {USERNAME_MAX} ASCII letters, digits and . _ @ + -, "
                            "starting with a letter or digit; unique whatever the case"}
_ROLE = {"type": "string", "enum": ["Viewer", "User", "Op", "Admin"]}
_PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024, "writeOnly": True}
_RUN_ID = {"type": "string", "minLength": 1, "maxLength": 250, "pattern": RUN_ID_PATTERN,
           "description": "ASCII letters, digits and _ . : + ~ - or spaces (at most 250), not "
                          "starting with a dot or a space"}
_RUN_DATE = {"type": "string", "format": "date-time", "pattern": DATE_YEAR_PATTERN,
             "description": "RFC 3339 with a timezone, years 1900 to 9000"}
_SLOTS = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
_CONF = {"type": "object", "additionalProperties": True,
         "description": f"a JSON object the DAG's params must accept, at most {MAX_JSON_DEPTH} "
                        "levels deep; it travels to the scheduler on NATS, so its encoded size "
                        "is bounded by the server's max_payload (413 past it)"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict, required: tuple[str, ...] = (), extra: bool = True,
         description: str | None = None) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props,
                              "additionalProperties": extra}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def _collection(key: str, item: str) -> dict:
    return _obj({key: {"type": "array", "items": _ref(item)}, "total_entries": _INT},
                required=(key, "total_entries"))


_CONN_FIELDS = {"conn_type": {"type": "string", "minLength": 1, "maxLength": 500,
                              "pattern": NAME_PATTERN},
                "description": _text(), "host": _text(500), "login": _text(),
                "password": {"type": "string", "nullable": True, "writeOnly": True},
                "schema": _text(500),
                "port": {"type": "integer", "minimum": 0, "maximum": 65535, "nullable": True},
                "extra": {"oneOf": [_STR, _OBJ], "nullable": True,
                          "description": "a JSON object, or its text"}}

SCHEMAS: dict[str, dict] = {
    "Problem": _obj({"type": _STR, "title": _STR, "status": _INT, "detail": _STR},
                    required=("type", "title", "status", "detail")),
    "DAG": _obj({"dag_id": _STR, "is_paused": _BOOL, "is_active": _BOOL, "fileloc": _NSTR,
                 "owners": {"type": "array", "items": _STR}, "description": _NSTR,
                 "tags": {"type": "array", "items": _STR}, "schedule_interval": _NSTR,
                 "timetable_summary": _NSTR, "catchup": _BOOL, "max_active_runs": _NINT,
                 "max_active_tasks": _NINT, "dag_hash": _NSTR, "next_dagrun": _DATE,
                 "next_dagrun_data_interval_start": _DATE,
                 "next_dagrun_data_interval_end": _DATE, "next_dagrun_create_after": _DATE,
                 "last_parsed_time": _DATE, "has_import_errors": _BOOL},
                required=("dag_id", "is_paused", "is_active", "tags")),
    "DAGPatch": _obj({"is_paused": _BOOL}, required=("is_paused",), extra=False),
    "Task": _obj({"task_id": _STR, "task_type": _STR, "upstream_task_ids": {"type": "array"},
                  "downstream_task_ids": {"type": "array"}}, required=("task_id",)),
    "DAGSource": _obj({"dag_id": _STR, "fileloc": _STR, "content": _STR},
                      required=("dag_id", "content")),
    "Tag": _obj({"name": _STR}, required=("name",)),
    "DAGBundle": _obj({"version": _STR, "created_at": _DATE, "size_bytes": _INT,
                       "files": {"type": "array", "items": _ref("DAGBundleFile")}},
                      required=("version", "files")),
    "DAGBundleFile": _obj({"path": _STR, "sha256": _STR, "content": _STR},
                          required=("path", "sha256")),
    "DAGRun": _obj({"dag_id": _STR, "dag_run_id": _NSTR, "state": _NSTR, "run_type": _NSTR,
                    "logical_date": _DATE, "data_interval_start": _DATE,
                    "data_interval_end": _DATE, "queued_at": _DATE, "start_date": _DATE,
                    "end_date": _DATE, "conf": _OBJ, "external_trigger": _BOOL,
                    "triggered_by": _NSTR, "dag_hash": _NSTR, "bundle_version": _NSTR,
                    "clear_number": _INT,
                    "note": _NSTR, "last_scheduling_decision": _DATE},
                   required=("dag_id", "dag_run_id")),
    "DAGRunTrigger": _obj({"conf": _CONF, "dag_run_id": dict(_RUN_ID, nullable=True),
                           "logical_date": dict(_RUN_DATE, nullable=True),
                           "note": _text(description="accepted for Airflow clients; not "
                                                     "stored")},
                          extra=False),
    "Asset": _obj({"id": _INT, "name": _STR, "uri": _STR, "group": _STR, "extra": _OBJ,
                   "watchers": {"type": "array", "items": _OBJ}, "created_at": _DATE,
                   "updated_at": _DATE, "events": _INT, "last_event": _DATE,
                   "aliases": {"type": "array", "items": _STR},
                   "producing_tasks": {"type": "array", "items": _OBJ},
                   "consuming_dags": {"type": "array", "items": _OBJ},
                   "reading_tasks": {"type": "array", "items": _OBJ}},
                  required=("name", "uri")),
    "AssetEvent": _obj({"id": _INT, "asset_name": _STR, "asset_uri": _NSTR, "extra": _OBJ,
                        "source": _NSTR, "source_dag_id": _NSTR, "source_run_id": _NSTR,
                        "source_task_id": _NSTR, "source_map_index": _NINT,
                        "source_aliases": {"type": "array", "items": _STR, "nullable": True},
                        "timestamp": _DATE, "duplicate": _BOOL},
                       required=("id", "asset_name")),
    "AssetEventCreate": _obj({"asset_name": {"type": "string", "minLength": 1,
                                             "maxLength": 1000},
                              "extra": dict(_OBJ, description="the event's extra (a JSON "
                                                               "object)"),
                              "id": {"type": "string", "minLength": 1, "maxLength": 250,
                                     "nullable": True,
                                     "description": "makes the event idempotent: an event "
                                                    "with this id is recorded once"}},
                             required=("asset_name",), extra=False),
    "DAGRunState": _obj({"state": {"type": "string", "enum": ["queued", "success", "failed"]},
                         "note": _NOTE}, extra=False),
    "DAGBackfill": _obj({"start_date": _BACKFILL_DATE, "end_date": _BACKFILL_DATE,
                         "reset_dagruns": dict(_BOOL, description="replace runs that exist"),
                         "dry_run": dict(_BOOL, description="only list the runs")},
                        required=("start_date", "end_date"), extra=False),
    "DAGBackfillProgress": _obj({"dag_id": _STR, "runs": {"type": "array", "items": _OBJ},
                                 "total": _INT, "done": _INT, "runs_done": _INT,
                                 "failed": _INT, "finished": _BOOL},
                                required=("dag_id", "runs")),
    "ClearRequest": _obj({"dry_run": _BOOL, "only_failed": _BOOL, "only_running": _BOOL,
                          "task_ids": {"type": "array", "items": _STR},
                          "include_upstream": _BOOL, "include_downstream": _BOOL}, extra=False),
    "ClearTaskInstances": _obj({"dry_run": _BOOL, "only_failed": _BOOL, "only_running": _BOOL,
                                "task_ids": {"type": "array", "items": _STR},
                                "include_upstream": _BOOL, "include_downstream": _BOOL,
                                "dag_run_id": _NSTR}, extra=False),
    "CommandResult": _OBJ,
    "TaskInstance": _obj({"dag_id": _STR, "dag_run_id": _STR, "task_id": _STR,
                          "map_index": _INT, "state": _STR, "try_number": _INT,
                          "max_tries": _INT, "start_date": _DATE, "end_date": _DATE,
                          "duration": _NUM, "hostname": _NSTR, "executor": _NSTR,
                          "pool": _STR, "operator": _NSTR, "note": _NSTR,
                          "rendered_fields": dict(_OBJ, description=(
                              "the rendered template fields, with every secret the task read "
                              "(sensitive variables, connection passwords) masked as ***")),
                          "trigger_id": {"type": "integer", "nullable": True},
                          "trigger_timeout": _DATE, "next_method": _NSTR,
                          "trigger": {"type": "object", "nullable": True, "description": (
                              "a deferred task instance's trigger: id, classpath, kwargs, "
                              "created_date, timeout, triggerer_id, lease_until, "
                              "next_method (GET of one task instance only)")}},
                         required=("dag_id", "dag_run_id", "task_id", "map_index", "state")),
    "TaskInstanceState": _obj({"new_state": {"type": "string",
                                             "enum": ["success", "failed", "skipped"]},
                               "map_indexes": {"type": "array", "items": {
                                   "type": "integer", "minimum": 0, "maximum": MAX_INT}},
                               "include_upstream": _BOOL, "include_downstream": _BOOL,
                               "include_future": _BOOL, "include_past": _BOOL,
                               "note": _NOTE}, extra=False),
    "Try": _obj({"try_number": _INT, "map_index": _INT, "state": _STR, "start_date": _DATE,
                 "end_date": _DATE, "duration": _NUM, "hostname": _NSTR, "executor": _NSTR,
                 "error": _NSTR}, required=("try_number", "state")),
    "TiEvent": _obj({"timestamp": _DATE, "try_number": _INT, "old_state": _NSTR,
                     "new_state": _NSTR, "cause": _NSTR, "node": _NSTR}),
    "TaskDependency": _obj({
        "name": _STR, "reason": _STR,
        "recorded_by_scheduler": {**_BOOL, "description": "true: the scheduler recorded this "
                                  "reason as it held the task instance back; false: read "
                                  "from the store with the scheduler's rules"},
        "since": {**_DATE, "description": "when the scheduler first recorded it"}},
        required=("name", "reason")),
    "TaskDependencies": _obj({"state": _STR, "dependencies": {
        "type": "array", "items": _ref("TaskDependency")}},
        required=("state", "dependencies")),
    "Log": _obj({"dag_id": _STR, "dag_run_id": _STR, "task_id": _STR, "map_index": _INT,
                 "try_number": _INT, "latest_try_number": _INT, "content": _STR},
                required=("try_number", "content")),
    "XCom": _obj({"dag_id": _STR, "dag_run_id": _STR, "task_id": _STR, "map_index": _INT,
                  "key": _STR, "timestamp": _DATE, "value": _NSTR},
                 required=("dag_id", "dag_run_id", "task_id", "key")),
    "Variable": _obj({"key": _STR, "value": dict(_NSTR, description=(
                          "*** for keys that look secret (password, token, secret...)")),
                      "description": _NSTR}, required=("key", "value")),
    "VariableCreate": _obj({"key": _KEY, "value": _STR, "description": _text()},
                           required=("key", "value"), extra=False),
    "VariableUpdate": _obj({"key": dict(_KEY, description="if given, the key of the URL (409 "
                                                         "otherwise: variables are not renamed)"),
                            "value": _STR, "description": _text()}, extra=False),
    "Connection": _obj({"conn_id": _STR, "conn_type": _STR, "description": _NSTR,
                        "host": _NSTR, "login": _NSTR, "schema": _NSTR, "port": _NINT,
                        "extra": _NSTR, "has_password": _BOOL},
                       required=("conn_id", "conn_type", "has_password"),
                       description="never with its password; sensitive extra fields are ***"),
    "ConnectionCreate": _obj({"conn_id": _CONN_ID, **_CONN_FIELDS},
                             required=("conn_id", "conn_type"), extra=False),
    "ConnectionUpdate": _obj({"conn_id": dict(_CONN_ID, description=(
                                  "if given, the id of the URL (409 otherwise: connections are "
                                  "not renamed)")), **_CONN_FIELDS},
                             extra=False, description="fields left out keep their value"),
    "Pool": _obj({"name": _STR, "slots": _INT, "description": _NSTR, "running_slots": _INT,
                  "queued_slots": _INT, "scheduled_slots": _INT, "occupied_slots": _INT,
                  "open_slots": _INT}, required=("name", "slots")),
    "PoolCreate": _obj({"name": _POOL, "slots": _SLOTS, "description": _text(),
                        "include_deferred": _BOOL}, required=("name", "slots"), extra=False),
    "PoolUpdate": _obj({"name": dict(_POOL, description="if given, the name of the URL (409 "
                                                        "otherwise: pools are not renamed)"),
                        "slots": _SLOTS, "description": _text(),
                        "include_deferred": _BOOL}, extra=False),
    "ImportError": _obj({"import_error_id": _INT, "filename": _STR, "stack_trace": _STR,
                         "timestamp": _DATE}, required=("import_error_id", "filename")),
    "EventLog": _obj({"event_log_id": _INT, "when": _DATE, "event": _STR, "owner": _NSTR,
                      "dag_id": _NSTR, "run_id": _NSTR, "task_id": _NSTR,
                      "map_index": _NINT, "try_number": _NINT, "extra": _NSTR},
                     required=("event_log_id", "event")),
    "User": _obj({"username": _STR, "email": _NSTR, "first_name": _NSTR, "last_name": _NSTR,
                  "role": _STR, "active": _BOOL, "created_at": _DATE, "last_login": _DATE},
                 required=("username", "role", "active")),
    "UserCreate": _obj({"username": _USERNAME, "password": _PASSWORD, "role": _ROLE,
                        "email": _text(512), "first_name": _text(256),
                        "last_name": _text(256)},
                       required=("username", "password", "role"), extra=False),
    "UserUpdate": _obj({"role": _ROLE, "password": _PASSWORD, "email": _text(512),
                        "first_name": _text(256), "last_name": _text(256), "active": _BOOL},
                       extra=False, description=(
                           "nobody changes their own role or active flag, and the last active "
                           "Admin stays an active Admin (409)")),
    "Health": _obj({"metadatabase": _OBJ, "scheduler": _OBJ, "nats": _OBJ, "dask": _OBJ,
                    "triggerer": _OBJ,
                    "workers": {"type": "array", "items": _OBJ},
                    "web": {"type": "array", "items": _OBJ}}, required=("metadatabase",)),
    "Version": _obj({"version": _STR, "git_version": _NSTR}, required=("version",)),
}
for _name_, _item, _key in (("DAGCollection", "DAG", "dags"),
                            ("TaskCollection", "Task", "tasks"),
                            ("TagCollection", "Tag", "tags"),
                            ("DAGRunCollection", "DAGRun", "dag_runs"),
                            ("AssetCollection", "Asset", "assets"),
                            ("AssetEventCollection", "AssetEvent", "asset_events"),
                            ("TaskInstanceCollection", "TaskInstance", "task_instances"),
                            ("TryCollection", "Try", "tries"),
                            ("TiEventCollection", "TiEvent", "events"),
                            ("XComCollection", "XCom", "xcom_entries"),
                            ("VariableCollection", "Variable", "variables"),
                            ("ConnectionCollection", "Connection", "connections"),
                            ("PoolCollection", "Pool", "pools"),
                            ("ImportErrorCollection", "ImportError", "import_errors"),
                            ("EventLogCollection", "EventLog", "event_logs"),
                            ("UserCollection", "User", "users")):
    SCHEMAS[_name_] = _collection(_key, _item)

#: Run and task instance states, as the filters accept them (every state updraft/state.py
#: defines, in its order).
RUN_STATES = [str(s) for s in DagRunState]
TI_STATES = [str(s) for s in TaskInstanceState]


def _path_param(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or _STR}


def _query(name: str, schema: dict, description: str = "") -> dict:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


def _list_query(name: str, items: dict, description: str) -> dict:
    """A repeated query parameter (``?state=a&state=b``)."""
    return dict(_query(name, {"type": "array", "items": items}, description),
                style="form", explode=True)


PAGE = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT, "default": 0})]
MAP_INDEX = _query("map_index", {"type": "integer", "minimum": -1, "maximum": MAX_INT,
                                 "default": -1}, "map index of a mapped task (-1: not mapped)")
DAG_ID = _path_param("dag_id")
RUN_ID = _path_param("dag_run_id")
TASK_ID = _path_param("task_id")
_FILTER_DATE = {"type": "string", "format": "date-time"}

_PROBLEM = {"application/problem+json": {"schema": _ref("Problem")}}
_ERRORS = {"400": "invalid request (the detail names the field and the rule)",
           "404": "not found", "409": "conflict (the detail says with what)",
           "413": "the request is too large (the detail names the limit)",
           "415": "not JSON", "502": "the scheduler failed",
           "503": "the bus or the scheduler is unreachable"}


def _problem(description: str) -> dict:
    return {"description": description, "content": _PROBLEM}


def _op(summary: str, ok: dict, *, status: str = "200", params: list | None = None,
        body: str | None = None, errors: tuple[str, ...] = (), tag: str,
        permission: str | None = "read", public: bool = False,
        conflict: str | None = None, description: str | None = None) -> dict:
    responses: dict[str, Any] = {status: ok}
    if not public:
        responses["401"] = _problem("no credentials, or wrong ones")
        responses["403"] = _problem("the role lacks the permission (the reason says which)")
    codes = set(errors)
    if body:
        codes |= {"400", "413", "415"}
    if params and any(p["in"] == "query" for p in params):
        codes.add("400")
    for code in sorted(codes):
        text = conflict if code == "409" and conflict else _ERRORS[code]
        responses[code] = _problem(text)
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(body)}}}
    if public:
        op["security"] = []
    elif permission:
        op["x-permission"] = permission
    return op


def _json(schema: str, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_NO_CONTENT = {"description": "done"}
_BUS = ("503", "502")
_CHANGED = ("another writer (the scheduler, a task's outcome) changed it at the same time; "
            "nothing was changed: try again")


def _paths() -> dict:
    ti = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"
    run = "/dags/{dag_id}/dagRuns/{dag_run_id}"
    return {
        "/dags": {"get": _op("List DAGs", _json("DAGCollection"), tag="DAG", params=PAGE + [
            _list_query("tags", _STR, "any of these tags"),
            _query("paused", _BOOL), _query("only_active", {"type": "boolean", "default": True}),
            _query("dag_id_pattern", _STR, "part of the DAG id (case-insensitive)"),
            _query("owner", _STR),
            _query("order_by", {"type": "string", "enum": [
                "dag_id", "-dag_id", "next_dagrun", "-next_dagrun", "last_parsed_time",
                "-last_parsed_time"]})])},
        "/dags/{dag_id}": {
            "get": _op("Get a DAG", _json("DAG"), params=[DAG_ID], errors=("404",), tag="DAG"),
            "patch": _op("Pause or unpause a DAG (over the bus)", _json("DAG"), params=[DAG_ID],
                         body="DAGPatch", errors=("404",) + _BUS, tag="DAG",
                         permission="dag.pause"),
            "delete": _op("Delete a DAG's metadata (over the bus)", _NO_CONTENT, status="204",
                          params=[DAG_ID], errors=("404",) + _BUS, tag="DAG",
                          permission="dag.delete",
                          description="Its runs, task instances, tries, XComs and versions "
                                      "go; the audit log stays. The file stays too: the DAG "
                                      "processor parses it again and the DAG comes back "
                                      "without its history.")},
        "/dags/{dag_id}/backfill": {
            "get": _op("The progress of a DAG's backfill runs", _json("DAGBackfillProgress"),
                       params=[DAG_ID, _query("start_date", _FILTER_DATE, "RFC 3339"),
                               _query("end_date", _FILTER_DATE, "RFC 3339")],
                       errors=("404",), tag="DAG"),
            "post": _op("Backfill a date range (over the bus)", _json("CommandResult"),
                        params=[DAG_ID], body="DAGBackfill", errors=("404", "409") + _BUS,
                        tag="DAG", permission="run.trigger",
                        conflict="the end date is before the start date, or the range holds "
                                 "more than 1,000 runs (backfill it in parts)",
                        description="Creates one backfill run per scheduled interval whose "
                                    "logical date is in the range (existing ones are kept "
                                    "unless reset_dagruns); the scheduler runs them.")},
        "/dags/{dag_id}/details": {"get": _op("Get a DAG with its serialized details",
                                              _json("DAG"), params=[DAG_ID], errors=("404",),
                                              tag="DAG")},
        "/dags/{dag_id}/tasks": {"get": _op("List a DAG's tasks", _json("TaskCollection"),
                                            params=[DAG_ID], errors=("404",), tag="DAG")},
        "/dags/{dag_id}/tasks/{task_id}": {"get": _op("Get a task", _json("Task"),
                                                      params=[DAG_ID, TASK_ID],
                                                      errors=("404",), tag="DAG")},
        "/dags/{dag_id}/source": {"get": _op("Get the source of a DAG's file", _json("DAGSource"),
                                             params=[DAG_ID], errors=("404",), tag="DAG")},
        "/dagBundles/{version}": {"get": _op(
            "Get a DAG bundle version (the files a run's code came from)", _json("DAGBundle"),
            params=[_path_param("version")], errors=("404",), tag="DAG")},
        "/dagBundles/{version}/files/{path}": {"get": _op(
            "Get one file of a DAG bundle version, with its content", _json("DAGBundleFile"),
            params=[_path_param("version"), _path_param("path")], errors=("404",),
            tag="DAG")},
        "/dagTags": {"get": _op("List DAG tags", _json("TagCollection"), params=PAGE,
                                tag="DAG")},
        "/dags/{dag_id}/dagRuns": {
            "get": _op("List runs ('~' for every DAG)", _json("DAGRunCollection"), tag="DAGRun",
                       errors=("404",), params=[DAG_ID] + PAGE + [
                _list_query("state", {"type": "string", "enum": RUN_STATES}, "any of these"),
                _query("order_by", {"type": "string", "enum": [
                    p + c for c in ("id", "logical_date", "start_date", "end_date", "state",
                                    "run_id") for p in ("", "-")]}),
                _query("logical_date_gte", _FILTER_DATE, "RFC 3339 with a timezone"),
                _query("logical_date_lte", _FILTER_DATE, "RFC 3339 with a timezone")]),
            "post": _op("Trigger a run (over the bus)", _json("DAGRun"), params=[DAG_ID],
                        body="DAGRunTrigger", tag="DAGRun", errors=("404", "409") + _BUS,
                        permission="run.trigger",
                        conflict="the run id or the logical date is taken, or the DAG has no "
                                 "serialized version yet",
                        description="The conf is checked against the DAG's params (400 with "
                                    "the reason if they refuse it).")},
        run: {
            "get": _op("Get a run", _json("DAGRun"), params=[DAG_ID, RUN_ID], errors=("404",),
                       tag="DAGRun"),
            "patch": _op("Set a run's state or note (over the bus)", _json("DAGRun"),
                         params=[DAG_ID, RUN_ID], body="DAGRunState", tag="DAGRun",
                         errors=("404", "409") + _BUS, permission="run.mark", conflict=_CHANGED),
            "delete": _op("Delete a run (over the bus)", _NO_CONTENT, status="204",
                          params=[DAG_ID, RUN_ID], errors=("404", "409") + _BUS, tag="DAGRun",
                          permission="run.delete", conflict=_CHANGED)},
        run + "/clear": {"post": _op("Clear a run's task instances (over the bus)",
                                     _json("CommandResult"), params=[DAG_ID, RUN_ID],
                                     body="ClearRequest", tag="DAGRun",
                                     errors=("404", "409") + _BUS, permission="run.clear",
                                     conflict=_CHANGED)},
        "/dags/{dag_id}/clearTaskInstances": {"post": _op(
            "Clear task instances of a DAG (over the bus)", _json("CommandResult"),
            params=[DAG_ID], body="ClearTaskInstances", tag="TaskInstance",
            errors=("404", "409") + _BUS, permission="run.clear", conflict=_CHANGED)},
        run + "/taskInstances": {"get": _op(
            "List a run's task instances", _json("TaskInstanceCollection"), tag="TaskInstance",
            errors=("404",), params=[DAG_ID, RUN_ID] + PAGE + [
                _list_query("state", {"type": "string", "enum": TI_STATES}, "any of these")])},
        ti: {
            "get": _op("Get a task instance", _json("TaskInstance"), tag="TaskInstance",
                       params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX], errors=("404",)),
            "patch": _op("Set a task instance's state or note (over the bus)",
                         _json("CommandResult"),
                         params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX], body="TaskInstanceState",
                         tag="TaskInstance", errors=("404", "409") + _BUS,
                         permission="run.mark", conflict=_CHANGED),
            "post": _op("Set a task instance's state (over the bus; same as PATCH)",
                        _json("CommandResult"), params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX],
                        body="TaskInstanceState", tag="TaskInstance",
                        errors=("404", "409") + _BUS, permission="run.mark",
                        conflict=_CHANGED)},
        ti + "/tries": {"get": _op("List a task instance's tries", _json("TryCollection"),
                                   params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX],
                                   errors=("404",), tag="TaskInstance")},
        ti + "/events": {"get": _op("The story of a task instance (why it is in its state)",
                                    _json("TiEventCollection"), tag="TaskInstance",
                                    params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX],
                                    errors=("404",))},
        ti + "/dependencies": {"get": _op(
            "Why a task instance is not running (empty once it runs or is over)",
            _json("TaskDependencies"), tag="TaskInstance",
            params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX], errors=("404",))},
        ti + "/logs": {"get": _op(
            "Get the log of one try", {"description": "the log", "content": {
                "application/json": {"schema": _ref("Log")},
                "text/plain": {"schema": _STR}}}, tag="TaskInstance", errors=("404",),
            params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX,
                    _query("try_number", {"type": "integer", "minimum": 1, "maximum": MAX_INT},
                           "default: the latest try"),
                    _query("format", {"type": "string", "enum": ["json", "text"],
                                      "default": "json"})])},
        ti + "/xcomEntries": {"get": _op(
            "List a task instance's XComs", _json("XComCollection"), tag="XCom",
            errors=("404",), params=[DAG_ID, RUN_ID, TASK_ID] + PAGE + [
                _query("map_index", {"type": "integer", "minimum": -1, "maximum": MAX_INT},
                       "only this map index (default: all)")])},
        ti + "/xcomEntries/{xcom_key}": {"get": _op(
            "Get an XCom with its value", _json("XCom"), tag="XCom", errors=("404",),
            params=[DAG_ID, RUN_ID, TASK_ID, _path_param("xcom_key"), MAP_INDEX])},
        **_crud("/variables", "{variable_key}", "Variable", "VariableCreate", "VariableUpdate",
                "variable.read", "variable.edit",
                update_conflict="the key in the body differs from the URL's"),
        **_crud("/connections", "{connection_id}", "Connection", "ConnectionCreate",
                "ConnectionUpdate", "connection.read", "connection.edit",
                update_conflict="the conn_id in the body differs from the URL's"),
        **_crud("/pools", "{pool_name}", "Pool", "PoolCreate", "PoolUpdate", "read",
                "pool.edit", update_conflict="the name in the body differs from the URL's",
                delete_conflict="default_pool cannot be deleted (tasks without a pool run "
                                "in it)"),
        **_crud("/users", "{username}", "User", "UserCreate", "UserUpdate", "user.read",
                "user.edit", create_conflict="a user of that name exists (names are unique "
                                             "whatever the case)",
                update_conflict="you cannot change your own role or active flag, nor leave "
                                "no active Admin",
                delete_conflict="you cannot delete yourself, nor the last active Admin"),
        "/assets": {"get": _op("List assets", _json("AssetCollection"), tag="Asset",
                               params=PAGE + [_query("search", _STR,
                                                     "part of the name or URI")])},
        "/assets/events": {
            "get": _op("List asset events, newest first", _json("AssetEventCollection"),
                       tag="Asset", errors=("404",), params=PAGE + [
                           _query("asset_name", _STR), _query("source_dag_id", _STR),
                           _query("source_run_id", _STR),
                           _query("timestamp_gte", _FILTER_DATE, "RFC 3339 with a timezone"),
                           _query("timestamp_lte", _FILTER_DATE, "RFC 3339 with a timezone")]),
            "post": _op("Record an asset event (over the bus)",
                        _json("AssetEvent", "recorded"), status="201", body="AssetEventCreate",
                        tag="Asset", errors=("404",) + _BUS, permission="run.trigger",
                        description="The scheduler records the event and starts the runs of "
                                    "the DAGs scheduled on the asset (ADR 10). With an id "
                                    "already recorded: 200 and duplicate true.")},
        "/assets/{asset_name}": {"get": _op(
            "Get an asset with its producers, consumers and waiting events", _json("Asset"),
            tag="Asset", errors=("404",), params=[_path_param("asset_name")])},
        run + "/upstreamAssetEvents": {"get": _op(
            "The asset events that triggered a run", _json("AssetEventCollection"),
            tag="Asset", errors=("404",), params=[DAG_ID, RUN_ID])},
        "/importErrors": {"get": _op("List import errors", _json("ImportErrorCollection"),
                                     params=PAGE, tag="ImportError")},
        "/importErrors/{import_error_id}": {"get": _op(
            "Get an import error", _json("ImportError"), tag="ImportError", errors=("404",),
            params=[_path_param("import_error_id", {"type": "integer", "minimum": 0,
                                                    "maximum": MAX_INT})])},
        "/eventLogs": {"get": _op("List the audit log, newest first",
                                  _json("EventLogCollection"), tag="EventLog",
                                  params=PAGE + [_query("dag_id", _STR), _query("event", _STR),
                                                 _query("owner", _STR)])},
        "/health": {"get": _op("Health of the store, scheduler, workers, web nodes, NATS and "
                               "Dask", _json("Health"), tag="Monitoring", public=True)},
        "/version": {"get": _op("Version of Updraft", _json("Version"), tag="Monitoring")},
        "/openapi.json": {"get": _op("This document", {"description": "OpenAPI 3.0",
                                                       "content": {"application/json": {
                                                           "schema": _OBJ}}},
                                     tag="Monitoring", public=True)},
    }


def _crud(base: str, item: str, schema: str, create: str, update: str, read_perm: str,
          edit_perm: str, *, create_conflict: str | None = None,
          update_conflict: str | None = None, delete_conflict: str | None = None) -> dict:
    key = _path_param(item.strip("{}"))
    tag = schema
    name = tag.lower()
    return {
        base: {
            "get": _op(f"List {name}s", _json(f"{schema}Collection"), params=PAGE, tag=tag,
                       permission=read_perm),
            "post": _op(f"Create a {name}", _json(schema, "created"), status="201",
                        body=create, errors=("409",), tag=tag, permission=edit_perm,
                        conflict=create_conflict or f"a {name} of that name exists")},
        f"{base}/{item}": {
            "get": _op(f"Get a {name}", _json(schema), params=[key], errors=("404",),
                       tag=tag, permission=read_perm),
            "patch": _op(f"Change a {name}", _json(schema), params=[key], body=update,
                         errors=("404", "409"), tag=tag, permission=edit_perm,
                         conflict=update_conflict),
            "delete": _op(f"Delete a {name}", _NO_CONTENT, status="204", params=[key],
                          errors=("404",) + (("409",) if delete_conflict else ()), tag=tag,
                          permission=edit_perm, conflict=delete_conflict)},
    }


def openapi_document(version: str = "1.0.0") -> dict:
    """The OpenAPI 3.0.3 document (a fresh copy)."""
    return copy.deepcopy({
        "openapi": "3.0.3",
        "info": {"title": "Updraft REST API", "version": version,
                 "description": "Read the store; changes to DAGs, runs and task instances go "
                                "to the scheduler over NATS and the answer says what it did. "
                                "Errors are application/problem+json. Permissions per "
                                "operation are in x-permission (roles: Viewer < User < Op < "
                                "Admin). Request bodies are checked against the schemas "
                                "below exactly: unknown fields and nulls where a field is not "
                                "nullable are refused (400)."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}, {"basicAuth": []}, {"cookieAuth": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "a token from `updraft users token`"},
                "basicAuth": {"type": "http", "scheme": "basic"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "updraft_session",
                               "description": "the UI's session; state-changing requests also "
                                              "need the X-CSRF-Token header"},
            },
        },
    })


# -- the server's side: bodies are validated against these very schemas ------------------------

_VALIDATORS: dict[str, Any] = {}


def _json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema (``nullable`` becomes a null type; the
    ``$ref``s are inlined)."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _json_schema(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    converted = {key: _json_schema(value) for key, value in schema.items()
                 if key not in ("nullable", "writeOnly", "readOnly", "format")}
    if isinstance(schema.get("properties"), dict):
        converted["properties"] = {name: _json_schema(value)
                                   for name, value in schema["properties"].items()}
    if schema.get("nullable"):
        if "type" in converted:
            converted["type"] = [converted["type"], "null"]
        elif "oneOf" in converted:
            converted["oneOf"] = [*converted["oneOf"], {"type": "null"}]
    return converted


def request_validator(name: str):
    """A jsonschema validator for the request-body schema ``name`` (built once).

    Patterns are matched as the document's readers (ECMA 262) match them: ``$`` ends the text,
    a trailing newline included.
    """
    validator = _VALIDATORS.get(name)
    if validator is None:
        import re

        from jsonschema import Draft7Validator, ValidationError, validators

        def pattern(_validator, regex, instance, _schema):
            if not isinstance(instance, str):
                return
            python = regex[:-1] + r"\Z" if regex.endswith("$") else regex
            if re.search(python, instance) is None:
                yield ValidationError(f"{instance!r} does not match {regex!r}")

        cls = validators.extend(Draft7Validator, {"pattern": pattern})
        validator = cls(_json_schema(SCHEMAS[name]))
        _VALIDATORS[name] = validator
    return validator
