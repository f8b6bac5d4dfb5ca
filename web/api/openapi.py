"""The OpenAPI 3.0 document of the REST API v1, kept in step with the routes.

A test walks ``app.url_map`` and checks that every ``/api/v1`` route and method is here;
another fuzzes the API from this document (schemathesis). When you add a route, add it here.
"""

from __future__ import annotations

import copy
from typing import Any

_STR = {"type": "string"}
_NSTR = {"type": "string", "nullable": True}
_INT = {"type": "integer"}
_NINT = {"type": "integer", "nullable": True}
_BOOL = {"type": "boolean"}
_DATE = {"type": "string", "format": "date-time", "nullable": True}
_NUM = {"type": "number", "nullable": True}
_OBJ = {"type": "object", "additionalProperties": True}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict, required: tuple[str, ...] = (), extra: bool = True) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props,
                              "additionalProperties": extra}
    if required:
        schema["required"] = list(required)
    return schema


def _collection(key: str, item: str) -> dict:
    return _obj({key: {"type": "array", "items": _ref(item)}, "total_entries": _INT},
                required=(key, "total_entries"))


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
    "DAGRun": _obj({"dag_id": _STR, "dag_run_id": _NSTR, "state": _NSTR, "run_type": _NSTR,
                    "logical_date": _DATE, "data_interval_start": _DATE,
                    "data_interval_end": _DATE, "queued_at": _DATE, "start_date": _DATE,
                    "end_date": _DATE, "conf": _OBJ, "external_trigger": _BOOL,
                    "triggered_by": _NSTR, "dag_hash": _NSTR, "clear_number": _INT,
                    "note": _NSTR, "last_scheduling_decision": _DATE},
                   required=("dag_id", "dag_run_id")),
    "DAGRunTrigger": _obj({"conf": _OBJ, "dag_run_id": _NSTR,
                           "logical_date": {"type": "string", "format": "date-time",
                                            "nullable": True},
                           "note": _NSTR}, extra=False),
    "DAGRunState": _obj({"state": {"type": "string", "enum": ["queued", "success", "failed"]}},
                        required=("state",), extra=False),
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
                          "pool": _STR, "operator": _NSTR, "rendered_fields": _OBJ},
                         required=("dag_id", "dag_run_id", "task_id", "map_index", "state")),
    "TaskInstanceState": _obj({"new_state": {"type": "string",
                                             "enum": ["success", "failed", "skipped"]},
                               "map_indexes": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                               "include_upstream": _BOOL, "include_downstream": _BOOL,
                               "include_future": _BOOL, "include_past": _BOOL},
                              required=("new_state",), extra=False),
    "Try": _obj({"try_number": _INT, "map_index": _INT, "state": _STR, "start_date": _DATE,
                 "end_date": _DATE, "duration": _NUM, "hostname": _NSTR, "executor": _NSTR,
                 "error": _NSTR}, required=("try_number", "state")),
    "TiEvent": _obj({"timestamp": _DATE, "try_number": _INT, "old_state": _NSTR,
                     "new_state": _NSTR, "cause": _NSTR, "node": _NSTR}),
    "Log": _obj({"dag_id": _STR, "dag_run_id": _STR, "task_id": _STR, "map_index": _INT,
                 "try_number": _INT, "latest_try_number": _INT, "content": _STR},
                required=("try_number", "content")),
    "XCom": _obj({"dag_id": _STR, "dag_run_id": _STR, "task_id": _STR, "map_index": _INT,
                  "key": _STR, "timestamp": _DATE, "value": _NSTR},
                 required=("dag_id", "dag_run_id", "task_id", "key")),
    "Variable": _obj({"key": _STR, "value": _NSTR, "description": _NSTR},
                     required=("key", "value")),
    "VariableCreate": _obj({"key": {"type": "string", "minLength": 1}, "value": _STR,
                            "description": _NSTR}, required=("key", "value"), extra=False),
    "VariableUpdate": _obj({"key": _STR, "value": _STR, "description": _NSTR}, extra=False),
    "Connection": _obj({"conn_id": _STR, "conn_type": _STR, "description": _NSTR,
                        "host": _NSTR, "login": _NSTR, "schema": _NSTR, "port": _NINT,
                        "extra": _NSTR, "has_password": _BOOL},
                       required=("conn_id", "conn_type", "has_password")),
    "ConnectionWrite": _obj({"conn_id": {"type": "string", "minLength": 1},
                             "conn_type": {"type": "string", "minLength": 1},
                             "description": _NSTR, "host": _NSTR, "login": _NSTR,
                             "password": {"type": "string", "nullable": True,
                                          "writeOnly": True},
                             "schema": _NSTR,
                             "port": {"type": "integer", "minimum": 0, "maximum": 65535,
                                      "nullable": True},
                             "extra": {"oneOf": [_STR, _OBJ], "nullable": True}},
                            extra=False),
    "Pool": _obj({"name": _STR, "slots": _INT, "description": _NSTR, "running_slots": _INT,
                  "queued_slots": _INT, "scheduled_slots": _INT, "occupied_slots": _INT,
                  "open_slots": _INT}, required=("name", "slots")),
    "PoolCreate": _obj({"name": {"type": "string", "minLength": 1},
                        "slots": {"type": "integer", "minimum": 0}, "description": _NSTR},
                       required=("name", "slots"), extra=False),
    "PoolUpdate": _obj({"name": _STR, "slots": {"type": "integer", "minimum": 0},
                        "description": _NSTR}, extra=False),
    "ImportError": _obj({"import_error_id": _INT, "filename": _STR, "stack_trace": _STR,
                         "timestamp": _DATE}, required=("import_error_id", "filename")),
    "EventLog": _obj({"event_log_id": _INT, "when": _DATE, "event": _STR, "owner": _NSTR,
                      "dag_id": _NSTR, "run_id": _NSTR, "task_id": _NSTR,
                      "map_index": _NINT, "try_number": _NINT, "extra": _NSTR},
                     required=("event_log_id", "event")),
    "User": _obj({"username": _STR, "email": _NSTR, "first_name": _NSTR, "last_name": _NSTR,
                  "role": _STR, "active": _BOOL, "created_at": _DATE, "last_login": _DATE},
                 required=("username", "role", "active")),
    "UserCreate": _obj({"username": {"type": "string", "minLength": 1},
                        "password": {"type": "string", "minLength": 8, "writeOnly": True},
                        "role": {"type": "string", "enum": ["Viewer", "User", "Op", "Admin"]},
                        "email": _NSTR, "first_name": _NSTR, "last_name": _NSTR},
                       required=("username", "password", "role"), extra=False),
    "UserUpdate": _obj({"role": {"type": "string", "enum": ["Viewer", "User", "Op", "Admin"]},
                        "password": {"type": "string", "minLength": 8, "writeOnly": True},
                        "email": _NSTR, "first_name": _NSTR, "last_name": _NSTR,
                        "active": _BOOL}, extra=False),
    "Health": _obj({"metadatabase": _OBJ, "scheduler": _OBJ, "nats": _OBJ, "dask": _OBJ,
                    "workers": {"type": "array", "items": _OBJ},
                    "web": {"type": "array", "items": _OBJ}}, required=("metadatabase",)),
    "Version": _obj({"version": _STR, "git_version": _NSTR}, required=("version",)),
}
for _name, _item, _key in (("DAGCollection", "DAG", "dags"), ("TaskCollection", "Task", "tasks"),
                           ("TagCollection", "Tag", "tags"),
                           ("DAGRunCollection", "DAGRun", "dag_runs"),
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
    SCHEMAS[_name] = _collection(_key, _item)


def _path_param(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or _STR}


def _query(name: str, schema: dict, description: str = "") -> dict:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


PAGE = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        _query("offset", {"type": "integer", "minimum": 0, "default": 0})]
MAP_INDEX = _query("map_index", {"type": "integer", "minimum": -1, "default": -1},
                   "map index of a mapped task (-1: not mapped)")
DAG_ID = _path_param("dag_id")
RUN_ID = _path_param("dag_run_id")
TASK_ID = _path_param("task_id")

_PROBLEM = {"application/problem+json": {"schema": _ref("Problem")}}


def _problem(description: str) -> dict:
    return {"description": description, "content": _PROBLEM}


def _op(summary: str, ok: dict, *, status: str = "200", params: list | None = None,
        body: str | None = None, errors: tuple[str, ...] = (), tag: str,
        permission: str | None = "read", public: bool = False) -> dict:
    responses: dict[str, Any] = {status: ok}
    if not public:
        responses["401"] = _problem("no credentials, or wrong ones")
        responses["403"] = _problem("the role lacks the permission (the reason says which)")
    for code in errors:
        responses[code] = _problem({"400": "invalid request", "404": "not found",
                                    "409": "conflict", "415": "not JSON",
                                    "502": "the scheduler failed",
                                    "503": "the bus or the scheduler is unreachable"}[code])
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
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


def _paths() -> dict:
    ti = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"
    run = "/dags/{dag_id}/dagRuns/{dag_run_id}"
    return {
        "/dags": {"get": _op("List DAGs", _json("DAGCollection"), tag="DAG", errors=("400",),
                             params=PAGE + [
            _query("tags", {"type": "array", "items": _STR}, "any of these tags"),
            _query("paused", _BOOL), _query("only_active", {"type": "boolean", "default": True}),
            _query("dag_id_pattern", _STR, "part of the DAG id (case-insensitive)"),
            _query("owner", _STR),
            _query("order_by", {"type": "string", "enum": [
                "dag_id", "-dag_id", "next_dagrun", "-next_dagrun", "last_parsed_time",
                "-last_parsed_time"]})])},
        "/dags/{dag_id}": {
            "get": _op("Get a DAG", _json("DAG"), params=[DAG_ID], errors=("404",), tag="DAG"),
            "patch": _op("Pause or unpause a DAG (over the bus)", _json("DAG"), params=[DAG_ID],
                         body="DAGPatch", errors=("400", "404", "415") + _BUS, tag="DAG",
                         permission="dag.pause")},
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
        "/dagTags": {"get": _op("List DAG tags", _json("TagCollection"), params=PAGE,
                                errors=("400",), tag="DAG")},
        "/dags/{dag_id}/dagRuns": {
            "get": _op("List runs ('~' for every DAG)", _json("DAGRunCollection"), tag="DAGRun",
                       errors=("400", "404"), params=[DAG_ID] + PAGE + [
                _query("state", {"type": "array", "items": {
                    "type": "string", "enum": ["queued", "running", "success", "failed"]}}),
                _query("order_by", {"type": "string", "enum": [
                    p + c for c in ("id", "logical_date", "start_date", "end_date", "state",
                                    "run_id") for p in ("", "-")]}),
                _query("logical_date_gte", {"type": "string", "format": "date-time"}),
                _query("logical_date_lte", {"type": "string", "format": "date-time"})]),
            "post": _op("Trigger a run (conf checked against the DAG's params; over the bus)",
                        _json("DAGRun"), params=[DAG_ID], body="DAGRunTrigger", tag="DAGRun",
                        errors=("400", "404", "409", "415") + _BUS, permission="run.trigger")},
        run: {
            "get": _op("Get a run", _json("DAGRun"), params=[DAG_ID, RUN_ID], errors=("404",),
                       tag="DAGRun"),
            "patch": _op("Set a run's state (over the bus)", _json("DAGRun"),
                         params=[DAG_ID, RUN_ID], body="DAGRunState", tag="DAGRun",
                         errors=("400", "404", "409", "415") + _BUS, permission="run.mark"),
            "delete": _op("Delete a run (over the bus)", _NO_CONTENT, status="204",
                          params=[DAG_ID, RUN_ID], errors=("404", "409") + _BUS, tag="DAGRun",
                          permission="run.delete")},
        run + "/clear": {"post": _op("Clear a run's task instances (over the bus)",
                                     _json("CommandResult"), params=[DAG_ID, RUN_ID],
                                     body="ClearRequest", tag="DAGRun",
                                     errors=("400", "404", "409", "415") + _BUS,
                                     permission="run.clear")},
        "/dags/{dag_id}/clearTaskInstances": {"post": _op(
            "Clear task instances of a DAG (over the bus)", _json("CommandResult"),
            params=[DAG_ID], body="ClearTaskInstances", tag="TaskInstance",
            errors=("400", "404", "409", "415") + _BUS, permission="run.clear")},
        run + "/taskInstances": {"get": _op(
            "List a run's task instances", _json("TaskInstanceCollection"), tag="TaskInstance",
            errors=("400", "404"), params=[DAG_ID, RUN_ID] + PAGE + [
                _query("state", {"type": "array", "items": _STR})])},
        ti: {
            "get": _op("Get a task instance", _json("TaskInstance"), tag="TaskInstance",
                       params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX], errors=("400", "404")),
            "patch": _op("Set a task instance's state (over the bus)", _json("CommandResult"),
                         params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX], body="TaskInstanceState",
                         tag="TaskInstance", errors=("400", "404", "409", "415") + _BUS,
                         permission="run.mark"),
            "post": _op("Set a task instance's state (over the bus; same as PATCH)",
                        _json("CommandResult"), params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX],
                        body="TaskInstanceState", tag="TaskInstance",
                        errors=("400", "404", "409", "415") + _BUS, permission="run.mark")},
        ti + "/tries": {"get": _op("List a task instance's tries", _json("TryCollection"),
                                   params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX],
                                   errors=("400", "404"), tag="TaskInstance")},
        ti + "/events": {"get": _op("The story of a task instance (why it is in its state)",
                                    _json("TiEventCollection"), tag="TaskInstance",
                                    params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX],
                                    errors=("400", "404"))},
        ti + "/logs": {"get": _op(
            "Get the log of one try", {"description": "the log", "content": {
                "application/json": {"schema": _ref("Log")},
                "text/plain": {"schema": _STR}}}, tag="TaskInstance", errors=("400", "404"),
            params=[DAG_ID, RUN_ID, TASK_ID, MAP_INDEX,
                    _query("try_number", {"type": "integer", "minimum": 1},
                           "default: the latest try"),
                    _query("format", {"type": "string", "enum": ["json", "text"],
                                      "default": "json"})])},
        ti + "/xcomEntries": {"get": _op(
            "List a task instance's XComs", _json("XComCollection"), tag="XCom",
            errors=("400", "404"), params=[DAG_ID, RUN_ID, TASK_ID] + PAGE + [
                _query("map_index", {"type": "integer", "minimum": -1})])},
        ti + "/xcomEntries/{xcom_key}": {"get": _op(
            "Get an XCom with its value", _json("XCom"), tag="XCom", errors=("400", "404"),
            params=[DAG_ID, RUN_ID, TASK_ID, _path_param("xcom_key"), MAP_INDEX])},
        **_crud("/variables", "{variable_key}", "Variable", "VariableCreate", "VariableUpdate",
                "variable.read", "variable.edit"),
        **_crud("/connections", "{connection_id}", "Connection", "ConnectionWrite",
                "ConnectionWrite", "connection.read", "connection.edit"),
        **_crud("/pools", "{pool_name}", "Pool", "PoolCreate", "PoolUpdate", "read",
                "pool.edit"),
        **_crud("/users", "{username}", "User", "UserCreate", "UserUpdate", "user.read",
                "user.edit"),
        "/importErrors": {"get": _op("List import errors", _json("ImportErrorCollection"),
                                     params=PAGE, errors=("400",), tag="ImportError")},
        "/importErrors/{import_error_id}": {"get": _op(
            "Get an import error", _json("ImportError"), tag="ImportError", errors=("404",),
            params=[_path_param("import_error_id", {"type": "integer", "minimum": 0})])},
        "/eventLogs": {"get": _op("List the audit log, newest first",
                                  _json("EventLogCollection"), tag="EventLog", errors=("400",),
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
          edit_perm: str) -> dict:
    key = _path_param(item.strip("{}"))
    tag = schema
    return {
        base: {
            "get": _op(f"List {tag.lower()}s", _json(f"{schema}Collection"), params=PAGE,
                       errors=("400",), tag=tag, permission=read_perm),
            "post": _op(f"Create a {tag.lower()}", _json(schema, "created"), status="201",
                        body=create, errors=("400", "409", "415"), tag=tag,
                        permission=edit_perm)},
        f"{base}/{item}": {
            "get": _op(f"Get a {tag.lower()}", _json(schema), params=[key], errors=("404",),
                       tag=tag, permission=read_perm),
            "patch": _op(f"Change a {tag.lower()}", _json(schema), params=[key], body=update,
                         errors=("400", "404", "415"), tag=tag, permission=edit_perm),
            "delete": _op(f"Delete a {tag.lower()}", _NO_CONTENT, status="204", params=[key],
                          errors=("400", "404"), tag=tag, permission=edit_perm)},
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
                                "Admin)."},
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
