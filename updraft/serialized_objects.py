"""The read-only DAG and task objects built from a serialized DAG (see ``updraft.serialization``).

They carry the attribute names the run logic, the store and the web read on operators and
DAGs, so code written for DAG objects works on them unchanged. They hold no user code: a
custom timetable is an :class:`UnresolvedTimetable` that refuses to compute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from updraft.params import ParamsDict
from updraft.schedules import ScheduleError, Timetable, timezone_name
from updraft.state import TriggerRule

#: Most copies a mapped task may expand to (the same limit as ``updraft.mapping``).
MAX_MAP_LENGTH = 1024


class SerializationError(ValueError):
    """A serialized DAG that this version of Updraft cannot read (version, field or type)."""


class UnresolvedTimetable(Timetable):
    """A custom timetable seen from a node that does not import user code.

    It keeps the summary, description and data of the custom class so the web can show them;
    every computation raises ScheduleError saying how to register the class, because running
    an unregistered class would mean importing the DAG file's code (ADR 3). ``problem`` is why
    a registered class could not be rebuilt on this node, when that is the reason.
    """

    def __init__(self, class_path: str, data: dict, summary: str, description: str,
                 problem: str | None = None) -> None:
        self.class_path = class_path
        self.data = data
        self.problem = problem
        self._summary = summary
        self._description = description

    @property
    def summary(self) -> str:  # type: ignore[override]
        return self._summary

    @property
    def description(self) -> str:  # type: ignore[override]
        return self._description

    def serialize(self) -> dict[str, Any]:
        return dict(self.data)

    def _refuse(self, *_args: Any, **_kwargs: Any) -> Any:
        if self.problem:
            raise ScheduleError(self.problem)
        from updraft.schedules import how_to_register

        raise ScheduleError(f"custom timetable {self.class_path!r} is not registered, so it "
                            "cannot be computed from the serialized DAG: this node does not "
                            "import user code from DAG files (ADR 3). To schedule it, "
                            + how_to_register(f"the class {self.class_path!r}"))

    infer_manual_data_interval = _refuse  # type: ignore[assignment]
    next_dagrun_info = _refuse  # type: ignore[assignment]
    iter_dagrun_infos_between = _refuse  # type: ignore[assignment]
    generate_run_id = _refuse  # type: ignore[assignment]

    def _key(self) -> tuple:
        return (self.class_path, json.dumps(self.data, sort_keys=True))


@dataclass(frozen=True)
class ExpandInput:
    """What a mapped task maps over: argument names, upstream tasks and literal lengths."""

    kind: str  # "dict_of_lists" (expand) or "list_of_dicts" (expand_kwargs)
    mapped_argument_names: tuple[str, ...]
    upstream_task_ids: frozenset[str]
    #: The JSON form: per argument (or for the whole list) a literal or an XComArg reference.
    value: Any

    def get_map_length(self, xcom_lengths: Mapping[str, int | None]) -> int | None:
        """How many copies run, given the pushed lengths of upstream XComs; None if unknown."""
        if self.kind == "list_of_dicts":
            return _ref_length(self.value, xcom_lengths)
        total = 1
        for ref in self.value.values():
            length = _ref_length(ref, xcom_lengths)
            if length is None:
                return None
            total *= length
        return total


def _ref_length(ref: Any, lengths: Mapping[str, int | None]) -> int | None:
    if not isinstance(ref, dict) or "__xcomarg__" not in ref:
        return len(ref) if isinstance(ref, (list, dict)) else None
    return _xcomarg_length(ref["__xcomarg__"], lengths)


def _xcomarg_length(arg: dict, lengths: Mapping[str, int | None]) -> int | None:
    kind = arg.get("type")
    if kind == "xcom":
        return lengths.get(arg["task_id"])
    if kind == "map":
        return _xcomarg_length(arg["arg"], lengths)
    if kind == "zip":
        values = [_xcomarg_length(a, lengths) if isinstance(a, dict) and "type" in a
                  else len(a) for a in arg["args"]]
        if any(v is None for v in values):
            return None
        return max(values) if arg.get("longest") else min(values)
    raise SerializationError(f"serialized DAG has an XComArg of unknown type {kind!r}")


@dataclass(frozen=True, eq=False)
class SerializedTask:
    """One task as the scheduler and the web see it; read its attributes, never set them."""

    dag_id: str
    task_id: str
    label: str
    task_type: str
    operator_name: str
    task_module: str
    task_group_id: str | None
    ui_color: str
    ui_fgcolor: str
    upstream_task_ids: frozenset[str]
    downstream_task_ids: frozenset[str]
    trigger_rule: TriggerRule
    retries: int
    retry_delay: timedelta
    retry_exponential_backoff: bool
    max_retry_delay: timedelta | None
    depends_on_past: bool
    wait_for_downstream: bool
    ignore_first_depends_on_past: bool
    wait_for_past_depends_before_skipping: bool
    execution_timeout: timedelta | None
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    weight_rule: str
    sla: timedelta | None
    owner: str
    email: tuple[str, ...]
    email_on_failure: bool
    email_on_retry: bool
    start_date: datetime | None
    end_date: datetime | None
    is_mapped: bool
    expand_input: ExpandInput | None
    is_setup: bool
    is_teardown: bool
    on_failure_fail_dagrun: bool
    template_fields: tuple[str, ...]
    template_ext: tuple[str, ...]
    template_fields_renderers: dict[str, str]
    template_field_values: dict[str, Any]
    doc_md: str | None
    task_display_name: str
    is_sensor: bool
    max_active_tis_per_dag: int | None
    max_active_tis_per_dagrun: int | None
    executor_config: dict[str, Any]
    executor: str | None
    do_xcom_push: bool
    multiple_outputs: bool
    has_on_execute_callback: bool
    has_on_failure_callback: bool
    has_on_success_callback: bool
    has_on_retry_callback: bool
    has_on_skipped_callback: bool
    params: ParamsDict = field(repr=False)
    #: Assets, aliases and references the task writes and reads (``updraft.assets``).
    outlets: tuple = ()
    inlets: tuple = ()

    def __repr__(self) -> str:
        return f"<SerializedTask({self.task_type}): {self.task_id}>"

    def mapped_task_ids(self) -> set[str]:
        """Ids of the tasks whose XCom lengths decide how many copies run."""
        return set(self.expand_input.upstream_task_ids) if self.expand_input else set()

    def get_map_length(self, xcom_lengths: Mapping[str, int | None]) -> int | None:
        """How many copies of a mapped task run; None while an upstream length is unknown."""
        if self.expand_input is None:
            raise ValueError(f"task {self.task_id!r} is not mapped")
        total = self.expand_input.get_map_length(xcom_lengths)
        if total is not None and total > MAX_MAP_LENGTH:
            raise ValueError(f"Task {self.task_id!r} would expand to {total} copies; the limit "
                             f"is {MAX_MAP_LENGTH}")
        return total


@dataclass(frozen=True, eq=False)
class SerializedDAG:
    """A DAG as the scheduler and the web see it, built from the store's JSON."""

    dag_id: str
    dag_hash: str
    fileloc: str
    file_hash: str | None
    description: str | None
    doc_md: str | None
    owner: str
    owner_links: dict[str, str]
    tags: tuple[str, ...]
    timezone: tzinfo
    start_date: datetime | None
    end_date: datetime | None
    timetable_summary: str
    timetable_description: str
    timetable_json: dict[str, Any]
    timetable: Timetable
    catchup: bool
    max_active_runs: int
    max_active_tasks: int
    max_consecutive_failed_dag_runs: int
    dagrun_timeout: timedelta | None
    is_paused_upon_creation: bool | None
    fail_stop: bool
    render_template_as_native_obj: bool
    default_view: str | None
    orientation: str
    dag_display_name: str
    has_on_success_callback: bool
    has_on_failure_callback: bool
    has_sla_miss_callback: bool
    edge_info: dict[tuple[str, str], dict]
    task_group_json: dict[str, Any]
    task_dict: dict[str, SerializedTask]
    params: ParamsDict = field(repr=False)
    #: Asset-triggered runs: how many events each run consumes, at least (ADR 10).
    asset_batch_size: int = 1

    def __repr__(self) -> str:
        return f"<SerializedDAG: {self.dag_id} {self.dag_hash[:12]}>"

    @property
    def tasks(self) -> list[SerializedTask]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    @property
    def roots(self) -> list[SerializedTask]:
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self) -> list[SerializedTask]:
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    @property
    def timezone_name(self) -> str:
        return timezone_name(self.timezone)

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def get_task(self, task_id: str) -> SerializedTask:
        """The task with this id, or TaskNotFound."""
        from updraft.exceptions import TaskNotFound

        try:
            return self.task_dict[task_id]
        except KeyError:
            raise TaskNotFound(f"Task {task_id} not found in DAG {self.dag_id}") from None

    def get_edge_info(self, upstream_task_id: str, downstream_task_id: str) -> dict:
        return self.edge_info.get((upstream_task_id, downstream_task_id), {})
