"""Which Airflow import paths Updraft serves, and from where: one table, read by the import
hook (:mod:`updraft.compat.importer`) and by ``updraft dags check-compat``.

``MODULES`` maps an Airflow module to the names it serves: ``"updraft.module:attr"`` for a
name Updraft has, ``Unsupported(reason)`` for one it knowingly does not. ``ALIASES`` serves
every public name of an Updraft module under an Airflow module (plus what ``MODULES`` adds).
Any other Airflow module or name is not supported; ``UNSUPPORTED_MODULES`` gives the reason
for the common ones. Nothing here imports Updraft's modules: names resolve on first use.
"""

from __future__ import annotations

from typing import NamedTuple


class Unsupported(NamedTuple):
    """An Airflow name Updraft does not have, with what to do instead."""

    reason: str


def _u(reason: str) -> Unsupported:
    return Unsupported(reason)


_DEFERRABLE = ("deferral for this operator or trigger; Updraft defers the time, file, external "
               "task, HTTP and SQL sensors, HttpOperator and TriggerDagRunOperator (README, "
               "Deferrable tasks); use mode='reschedule' here")
_PARTITIONS = ("asset partitions and the asset state store (Airflow 3.2+); schedule on "
               "the asset itself and carry the partition in the event's extra")
_WATCHER_TRIGGERS = ("deferrable event triggers as asset watchers; watch a NATS subject with "
                     "updraft.assets.NatsSubjectTrigger or publish on the asset's JetStream "
                     "subject (README, Assets)")
_VENV = "install the packages on the workers and use PythonOperator or @task"

# -- groups of names shared by several Airflow paths ------------------------------------------

EXCEPTIONS: dict[str, str | Unsupported] = {
    "AirflowException": "updraft.exceptions:UpdraftException",
    "AirflowBadRequest": "updraft.exceptions:UpdraftBadRequest",
    "AirflowNotFoundException": "updraft.exceptions:UpdraftNotFoundException",
    "AirflowConfigException": "updraft.exceptions:UpdraftConfigException",
    "AirflowSkipException": "updraft.exceptions:UpdraftSkipException",
    "AirflowFailException": "updraft.exceptions:UpdraftFailException",
    "AirflowSensorTimeout": "updraft.exceptions:UpdraftSensorTimeout",
    "AirflowTaskTimeout": "updraft.exceptions:UpdraftTaskTimeout",
    "AirflowRescheduleException": "updraft.exceptions:UpdraftRescheduleException",
    "AirflowDagCycleException": "updraft.exceptions:DagCycleException",
    "DuplicateTaskIdFound": "updraft.exceptions:DuplicateTaskIdFound",
    "TaskAlreadyInTaskGroup": "updraft.exceptions:TaskAlreadyInTaskGroup",
    "ParamValidationError": "updraft.exceptions:ParamValidationError",
    "DagNotFound": "updraft.exceptions:DagNotFound",
    "DagRunNotFound": "updraft.exceptions:DagRunNotFound",
    "TaskNotFound": "updraft.exceptions:TaskNotFound",
    "DagRunAlreadyExists": "updraft.exceptions:DagRunAlreadyExists",
    "XComNotFound": "updraft.xcom_arg:XComNotFound",
    "XComForMappedNotFound": "updraft.exceptions:XComForMappedNotFound",
    "UnmappableXComTypePushed": "updraft.exceptions:UnmappableXComTypePushed",
    "TaskDeferred": "updraft.exceptions:TaskDeferred",
    "TaskDeferralError": "updraft.exceptions:TaskDeferralError",
    "TaskDeferralTimeout": "updraft.exceptions:TaskDeferralTimeout",
    "RemovedInAirflow3Warning": "updraft.exceptions:RemovedInUpdraftWarning",
    "AirflowProviderDeprecationWarning": "updraft.exceptions:RemovedInUpdraftWarning",
    "AirflowTaskTerminated": "updraft.exceptions:UpdraftTaskTerminated",
    "DownstreamTasksSkipped": _u("Airflow 3's internal skip signal; use a branch operator"),
    "DagRunTriggerException": _u("Airflow 3's internal trigger signal; use "
                                 "TriggerDagRunOperator"),
}

PYTHON_OPERATORS: dict[str, str | Unsupported] = {
    "PythonOperator": "updraft.operators.python:PythonOperator",
    "BranchPythonOperator": "updraft.operators.python:BranchPythonOperator",
    "ShortCircuitOperator": "updraft.operators.python:ShortCircuitOperator",
    "get_current_context": "updraft.runtime_context:get_current_context",
    "PythonVirtualenvOperator": _u(_VENV),
    "ExternalPythonOperator": _u(_VENV),
    "BranchPythonVirtualenvOperator": _u(_VENV),
    "BranchExternalPythonOperator": _u(_VENV),
}

DECORATORS: dict[str, str | Unsupported] = {
    "dag": "updraft.dag:dag",
    "task": "updraft.decorators:task",
    "task_group": "updraft.decorators:task_group",
    "setup": "updraft.decorators:setup",
    "teardown": "updraft.decorators:teardown",
}

BASE_OPERATOR: dict[str, str | Unsupported] = {
    "BaseOperator": "updraft.operators.base:BaseOperator",
    "chain": "updraft.operators.base:chain",
    "chain_linear": "updraft.operators.base:chain_linear",
    "cross_downstream": "updraft.operators.base:cross_downstream",
}

SENSOR_BASE: dict[str, str | Unsupported] = {
    "BaseSensorOperator": "updraft.sensors.base:BaseSensorOperator",
    "PokeReturnValue": "updraft.sensors.base:PokeReturnValue",
    "poke_mode_only": "updraft.sensors.base:poke_mode_only",
}

ASSETS: dict[str, str | Unsupported] = {
    "Asset": "updraft.assets:Asset",
    "AssetAlias": "updraft.assets:AssetAlias",
    "AssetAll": "updraft.assets:AssetAll",
    "AssetAny": "updraft.assets:AssetAny",
    "AssetWatcher": "updraft.assets:AssetWatcher",
    "AssetAccessControl": "updraft.assets:AssetAccessControl",
    "AssetRef": "updraft.assets:AssetRef",
    "AssetNameRef": "updraft.assets:AssetNameRef",
    "AssetUriRef": "updraft.assets:AssetUriRef",
    "Model": "updraft.assets:Model",
    "asset": "updraft.asset_decorators:asset",
    "Metadata": "updraft.assets:Metadata",
    "Dataset": "updraft.assets:Dataset",
    "DatasetAlias": "updraft.assets:AssetAlias",
    "DatasetAll": "updraft.assets:AssetAll",
    "DatasetAny": "updraft.assets:AssetAny",
}
ASSET_NAMES = tuple(ASSETS)
_PARTITION_NAMES = (
    "AllowedKeyMapper", "CronPartitionTimetable", "DayWindow", "FanOutMapper", "FixedKeyMapper",
    "IdentityMapper", "MinimumCount", "MonthWindow", "PartitionedAssetTimetable",
    "PartitionedAtRuntime", "ProductMapper", "RollupMapper", "SegmentWindow",
    "StartOfDayMapper", "StartOfHourMapper", "StartOfMonthMapper", "StartOfWeekMapper",
    "StartOfYearMapper", "WaitForAll", "WeekWindow", "Window", "PartitionMapper")

TRIGGER_BASE: dict[str, str | Unsupported] = {
    name: f"updraft.triggers.base:{name}" for name in (
        "BaseTrigger", "TriggerEvent", "StartTriggerArgs", "BaseTaskEndEvent",
        "TaskSuccessEvent", "TaskFailedEvent", "TaskSkippedEvent")
}
TIME_TRIGGERS: dict[str, str | Unsupported] = {
    "DateTimeTrigger": "updraft.triggers.temporal:DateTimeTrigger",
    "TimeDeltaTrigger": "updraft.triggers.temporal:TimeDeltaTrigger",
}
FILE_TRIGGERS: dict[str, str | Unsupported] = {
    "FileTrigger": "updraft.triggers.file:FileTrigger",
    "FileDeleteTrigger": _u("FileDeleteTrigger (an asset watcher trigger)"),
}
EXTERNAL_TRIGGERS: dict[str, str | Unsupported] = {
    "DagStateTrigger": "updraft.triggers.external:DagStateTrigger",
    "WorkflowTrigger": "updraft.triggers.external:WorkflowTrigger",
}

SDK: dict[str, str | Unsupported] = {
    **DECORATORS,
    **BASE_OPERATOR,
    **SENSOR_BASE,
    "DAG": "updraft.dag:DAG",
    "TaskGroup": "updraft.taskgroup:TaskGroup",
    "Variable": "updraft.models.variable:Variable",
    "Connection": "updraft.models.connection:Connection",
    "Param": "updraft.params:Param",
    "ParamsDict": "updraft.params:ParamsDict",
    "XComArg": "updraft.xcom_arg:XComArg",
    "Label": "updraft.utils.edgemodifier:Label",
    "EdgeModifier": "updraft.utils.edgemodifier:EdgeModifier",
    "TriggerRule": "updraft.state:TriggerRule",
    "DagRunState": "updraft.state:DagRunState",
    "TaskInstanceState": "updraft.state:TaskInstanceState",
    "WeightRule": "updraft.compat.shims:WeightRule",
    "BaseHook": "updraft.hooks.base:BaseHook",
    "get_current_context": "updraft.runtime_context:get_current_context",
    "get_parsing_context": "updraft.compat.shims:get_parsing_context",
    "Context": "updraft.compat.shims:Context",
    "literal": "updraft.templating:literal",
    "BaseOperatorLink": _u("operator extra links"),
    "BaseNotifier": "updraft.notifications:BaseNotifier",
    "ObjectStoragePath": _u("object storage paths (airflow.io)"),
    **ASSETS,
    "AssetOrTimeSchedule": "updraft.schedules:AssetOrTimeSchedule",
    "CronTriggerTimetable": "updraft.schedules:CronTriggerTimetable",
    **{name: _u(_PARTITIONS) for name in _PARTITION_NAMES},
}

TIMETABLES = {
    "airflow.timetables.base": {
        "Timetable": "updraft.schedules:Timetable",
        "DataInterval": "updraft.schedules:DataInterval",
        "DagRunInfo": "updraft.schedules:DagRunInfo",
        "TimeRestriction": "updraft.schedules:TimeRestriction",
    },
    "airflow.timetables.interval": {
        "CronDataIntervalTimetable": "updraft.schedules:CronDataIntervalTimetable",
        "DeltaDataIntervalTimetable": "updraft.schedules:DeltaDataIntervalTimetable",
    },
    "airflow.timetables.simple": {
        "NullTimetable": "updraft.schedules:NullTimetable",
        "OnceTimetable": "updraft.schedules:OnceTimetable",
        "ContinuousTimetable": "updraft.schedules:ContinuousTimetable",
        "DatasetTriggeredTimetable": "updraft.schedules:AssetTriggeredTimetable",
        "AssetTriggeredTimetable": "updraft.schedules:AssetTriggeredTimetable",
    },
    "airflow.timetables.trigger": {
        "CronTriggerTimetable": "updraft.schedules:CronTriggerTimetable",
    },
    "airflow.timetables.assets": {
        "AssetOrTimeSchedule": "updraft.schedules:AssetOrTimeSchedule",
    },
    "airflow.timetables.datasets": {
        "DatasetOrTimeSchedule": "updraft.schedules:AssetOrTimeSchedule",
    },
}

SQL_OPERATORS: dict[str, str | Unsupported] = {
    name: f"updraft.operators.sql:{name}" for name in (
        "BaseSQLOperator", "SQLExecuteQueryOperator", "SQLCheckOperator",
        "SQLValueCheckOperator", "SQLIntervalCheckOperator", "SQLThresholdCheckOperator",
        "SQLColumnCheckOperator", "SQLTableCheckOperator", "BranchSQLOperator")
}
SQL_HOOK: dict[str, str | Unsupported] = {
    "DbApiHook": "updraft.hooks.sql:DbApiHook",
    "fetch_all_handler": "updraft.hooks.sql:fetch_all_handler",
    "fetch_one_handler": "updraft.hooks.sql:fetch_one_handler",
}

_STANDARD_OPERATORS = {
    "python": PYTHON_OPERATORS,
    "bash": {"BashOperator": "updraft.operators.bash:BashOperator"},
    "empty": {"EmptyOperator": "updraft.operators.empty:EmptyOperator"},
    "trigger_dagrun": {
        "TriggerDagRunOperator": "updraft.operators.trigger_dagrun:TriggerDagRunOperator",
        "TriggerDagRunLink": _u("operator extra links"),
    },
    "latest_only": {"LatestOnlyOperator": "updraft.operators.latest_only:LatestOnlyOperator"},
    "datetime": {
        "BranchDateTimeOperator": "updraft.operators.datetime:BranchDateTimeOperator",
        "target_times_as_dates": "updraft.operators.datetime:target_times_as_dates",
    },
    "weekday": {
        "BranchDayOfWeekOperator": "updraft.operators.weekday:BranchDayOfWeekOperator",
    },
    "branch": {
        "BaseBranchOperator": "updraft.operators.branch:BaseBranchOperator",
        "BranchMixIn": "updraft.operators.branch:BaseBranchOperator",
    },
}

_STANDARD_SENSORS = {
    "base": SENSOR_BASE,
    "bash": {"BashSensor": "updraft.sensors.bash:BashSensor"},
    "filesystem": {"FileSensor": "updraft.sensors.filesystem:FileSensor"},
    "python": {"PythonSensor": "updraft.sensors.python:PythonSensor"},
    "time_delta": {
        "TimeDeltaSensor": "updraft.sensors.time:TimeDeltaSensor",
        "TimeDeltaSensorAsync": "updraft.sensors.time:TimeDeltaSensorAsync",
        "WaitSensor": _u("WaitSensor; use TimeDeltaSensor"),
    },
    "time": {
        "TimeSensor": "updraft.sensors.time:TimeSensor",
        "TimeSensorAsync": "updraft.sensors.time:TimeSensorAsync",
    },
    "date_time": {
        "DateTimeSensor": "updraft.sensors.time:DateTimeSensor",
        "DateTimeSensorAsync": "updraft.sensors.time:DateTimeSensorAsync",
    },
    "weekday": {"DayOfWeekSensor": "updraft.sensors.weekday:DayOfWeekSensor"},
    "external_task": {
        "ExternalTaskSensor": "updraft.sensors.external_task:ExternalTaskSensor",
        "ExternalTaskMarker": "updraft.sensors.external_task:ExternalTaskMarker",
        "ExternalTaskSensorLink": _u("operator extra links"),
        "ExternalDagLink": _u("operator extra links"),
    },
}

MODULES: dict[str, dict[str, str | Unsupported]] = {
    "airflow": {
        "DAG": "updraft.dag:DAG",
        "XComArg": "updraft.xcom_arg:XComArg",
        "AirflowException": "updraft.exceptions:UpdraftException",
        "Dataset": "updraft.assets:Dataset",
        "Asset": "updraft.assets:Asset",
        "settings": _u("Airflow's settings and ORM session"),
    },
    # Extension points: plugins, listeners, priority-weight strategies, secrets backends and
    # notifiers (Updraft's registry: updraft.plugins).
    "airflow.plugins_manager": {"AirflowPlugin": "updraft.plugins.base:AirflowPlugin"},
    "airflow.listeners": {"hookimpl": "updraft.listeners:hookimpl"},
    "airflow.task": {},
    "airflow.task.priority_strategy": {
        "PriorityWeightStrategy": "updraft.priority_weights:PriorityWeightStrategy",
        "_AbsolutePriorityWeightStrategy":
            "updraft.priority_weights:AbsolutePriorityWeightStrategy",
        "_DownstreamPriorityWeightStrategy":
            "updraft.priority_weights:DownstreamPriorityWeightStrategy",
        "_UpstreamPriorityWeightStrategy":
            "updraft.priority_weights:UpstreamPriorityWeightStrategy",
    },
    "airflow.task.weight_rule": {"WeightRule": "updraft.compat.shims:WeightRule"},
    "airflow.secrets": {"BaseSecretsBackend": "updraft.secrets_backends:BaseSecretsBackend"},
    "airflow.secrets.base_secrets": {
        "BaseSecretsBackend": "updraft.secrets_backends:BaseSecretsBackend"},
    "airflow.secrets.local_filesystem": {
        "LocalFilesystemBackend": "updraft.secrets_backends:LocalFilesystemBackend"},
    "airflow.sdk.bases.secrets_backend": {
        "BaseSecretsBackend": "updraft.secrets_backends:BaseSecretsBackend"},
    "airflow.notifications": {},
    "airflow.notifications.basenotifier": {
        "BaseNotifier": "updraft.notifications:BaseNotifier"},
    "airflow.sdk.bases.notifier": {"BaseNotifier": "updraft.notifications:BaseNotifier"},
    "airflow.providers.smtp.notifications": {},
    "airflow.providers.smtp.notifications.smtp": {
        "SmtpNotifier": "updraft.notifications:SmtpNotifier",
        "send_smtp_notification": "updraft.notifications:SmtpNotifier"},
    # Airflow 3 task SDK
    "airflow.sdk": SDK,
    "airflow.sdk.exceptions": EXCEPTIONS,
    "airflow.sdk.definitions.dag": {"DAG": "updraft.dag:DAG", "dag": "updraft.dag:dag"},
    "airflow.sdk.definitions.taskgroup": {"TaskGroup": "updraft.taskgroup:TaskGroup"},
    "airflow.sdk.definitions.param": {"Param": "updraft.params:Param",
                                      "ParamsDict": "updraft.params:ParamsDict"},
    "airflow.sdk.definitions.context": {"Context": "updraft.compat.shims:Context",
                                        "get_current_context":
                                            "updraft.runtime_context:get_current_context",
                                        "get_parsing_context":
                                            "updraft.compat.shims:get_parsing_context"},
    "airflow.sdk.definitions.edges": {"Label": "updraft.utils.edgemodifier:Label",
                                      "EdgeModifier": "updraft.utils.edgemodifier:EdgeModifier"},
    "airflow.sdk.definitions.template": {"literal": "updraft.templating:literal"},
    "airflow.sdk.definitions.xcom_arg": {"XComArg": "updraft.xcom_arg:XComArg"},
    "airflow.sdk.definitions.baseoperator": BASE_OPERATOR,
    "airflow.sdk.bases.operator": BASE_OPERATOR,
    "airflow.sdk.bases.sensor": SENSOR_BASE,
    "airflow.sdk.bases.hook": {"BaseHook": "updraft.hooks.base:BaseHook"},
    "airflow.sdk.bases.skipmixin": {"SkipMixin": "updraft.operators.skip:SkipMixin"},
    "airflow.sdk.bases.decorator": {"TaskDecorator": "updraft.decorators:TaskDecorator"},
    # Airflow 2 (and Airflow 3's deprecated re-exports)
    "airflow.models": {
        "DAG": "updraft.dag:DAG",
        "BaseOperator": "updraft.operators.base:BaseOperator",
        "Variable": "updraft.models.variable:Variable",
        "Connection": "updraft.models.connection:Connection",
        "Param": "updraft.params:Param",
        "XCom": "updraft.models.xcom:XCom",
        "XComArg": "updraft.xcom_arg:XComArg",
        "DagRun": "updraft.runtime_models:DagRun",
        "TaskInstance": "updraft.runtime_models:TaskInstance",
        "DagBag": "updraft.dagbag:DagBag",
        "MappedOperator": "updraft.mapping:MappedOperator",
        "Pool": _u("pools from DAG files; pass pool='name' and manage pools with "
                   "`updraft pools`"),
        "DagModel": _u("Airflow's ORM models; read state through the REST API"),
        "SlaMiss": _u("Airflow's ORM models"),
        "TaskReschedule": _u("Airflow's ORM models"),
    },
    "airflow.models.dag": {"DAG": "updraft.dag:DAG", "dag": "updraft.dag:dag",
                           "DagModel": _u("Airflow's ORM models")},
    "airflow.models.baseoperator": BASE_OPERATOR,
    "airflow.models.variable": {"Variable": "updraft.models.variable:Variable"},
    "airflow.models.connection": {"Connection": "updraft.models.connection:Connection"},
    "airflow.models.param": {"Param": "updraft.params:Param",
                             "ParamsDict": "updraft.params:ParamsDict"},
    "airflow.models.xcom_arg": {"XComArg": "updraft.xcom_arg:XComArg"},
    "airflow.models.taskinstance": {"TaskInstance": "updraft.runtime_models:TaskInstance"},
    "airflow.models.dagrun": {"DagRun": "updraft.runtime_models:DagRun"},
    "airflow.models.xcom": {"XCom": "updraft.models.xcom:XCom",
                            "XCOM_RETURN_KEY": "updraft.models.xcom:XCOM_RETURN_KEY"},
    "airflow.models.skipmixin": {"SkipMixin": "updraft.operators.skip:SkipMixin"},
    "airflow.models.mappedoperator": {"MappedOperator": "updraft.mapping:MappedOperator"},
    "airflow.decorators": DECORATORS,
    "airflow.exceptions": EXCEPTIONS,
    # operators, Airflow 2 paths (and their 1.10 names)
    "airflow.operators": {},
    **{f"airflow.operators.{name}": names for name, names in _STANDARD_OPERATORS.items()},
    "airflow.operators.python_operator": PYTHON_OPERATORS,
    "airflow.operators.bash_operator": {"BashOperator": "updraft.operators.bash:BashOperator"},
    "airflow.operators.dummy": {"DummyOperator": "updraft.operators.empty:EmptyOperator",
                                "EmptyOperator": "updraft.operators.empty:EmptyOperator"},
    "airflow.operators.dummy_operator": {
        "DummyOperator": "updraft.operators.empty:EmptyOperator"},
    "airflow.operators.email": {"EmailOperator": "updraft.operators.email:EmailOperator"},
    "airflow.operators.email_operator": {
        "EmailOperator": "updraft.operators.email:EmailOperator"},
    "airflow.operators.sql": {**SQL_OPERATORS},
    "airflow.operators.subdag": {"SubDagOperator": _u("SubDagOperator; use a TaskGroup")},
    # sensors, Airflow 2 paths
    "airflow.sensors": {},
    **{f"airflow.sensors.{name}": names for name, names in _STANDARD_SENSORS.items()},
    "airflow.sensors.base_sensor_operator": SENSOR_BASE,
    "airflow.sensors.time_sensor": _STANDARD_SENSORS["time"],
    "airflow.sensors.external_task_sensor": _STANDARD_SENSORS["external_task"],
    "airflow.sensors.sql": {"SqlSensor": "updraft.sensors.sql:SqlSensor"},
    "airflow.sensors.sql_sensor": {"SqlSensor": "updraft.sensors.sql:SqlSensor"},
    "airflow.sensors.http": {"HttpSensor": "updraft.sensors.http:HttpSensor"},
    # triggers (ADR 11)
    "airflow.triggers": {},
    "airflow.triggers.base": TRIGGER_BASE,
    "airflow.triggers.temporal": TIME_TRIGGERS,
    "airflow.triggers.file": FILE_TRIGGERS,
    "airflow.triggers.external_task": EXTERNAL_TRIGGERS,
    # hooks
    "airflow.hooks": {},
    "airflow.hooks.base": {"BaseHook": "updraft.hooks.base:BaseHook"},
    "airflow.hooks.base_hook": {"BaseHook": "updraft.hooks.base:BaseHook"},
    "airflow.hooks.filesystem": {"FSHook": "updraft.hooks.filesystem:FSHook"},
    "airflow.hooks.dbapi": SQL_HOOK,
    "airflow.hooks.subprocess": {
        "SubprocessHook": _u("SubprocessHook; use BashOperator or subprocess in a task")},
    # utilities
    "airflow.utils": {},
    "airflow.utils.trigger_rule": {"TriggerRule": "updraft.state:TriggerRule"},
    "airflow.utils.task_group": {"TaskGroup": "updraft.taskgroup:TaskGroup"},
    "airflow.utils.edgemodifier": {"Label": "updraft.utils.edgemodifier:Label",
                                   "EdgeModifier": "updraft.utils.edgemodifier:EdgeModifier"},
    "airflow.utils.state": {"State": "updraft.utils.state:State",
                            "TaskInstanceState": "updraft.state:TaskInstanceState",
                            "DagRunState": "updraft.state:DagRunState"},
    "airflow.utils.types": {"DagRunType": "updraft.state:DagRunType"},
    "airflow.utils.weight_rule": {"WeightRule": "updraft.compat.shims:WeightRule"},
    "airflow.utils.helpers": {"chain": "updraft.operators.base:chain",
                              "cross_downstream": "updraft.operators.base:cross_downstream"},
    "airflow.utils.context": {"Context": "updraft.compat.shims:Context"},
    "airflow.utils.template": {"literal": "updraft.templating:literal"},
    "airflow.utils.weekday": {"WeekDay": "updraft.utils.weekday:WeekDay"},
    "airflow.utils.email": {name: f"updraft.utils.email:{name}" for name in (
        "send_email", "send_email_smtp", "send_mime_email", "build_mime_message",
        "get_email_address_list")},
    "airflow.utils.dag_parsing_context": {
        "get_parsing_context": "updraft.compat.shims:get_parsing_context"},
    "airflow.configuration": {"conf": "updraft.config:conf"},
    **TIMETABLES,
    "airflow.timetables": {},
    # the standard provider (Airflow 3 paths)
    "airflow.providers": {},
    "airflow.providers.standard": {},
    "airflow.providers.standard.operators": {},
    **{f"airflow.providers.standard.operators.{name}": names
       for name, names in _STANDARD_OPERATORS.items()},
    "airflow.providers.standard.sensors": {},
    **{f"airflow.providers.standard.sensors.{name}": names
       for name, names in _STANDARD_SENSORS.items() if name != "base"},
    "airflow.providers.standard.triggers": {},
    "airflow.providers.standard.triggers.temporal": TIME_TRIGGERS,
    "airflow.providers.standard.triggers.file": FILE_TRIGGERS,
    "airflow.providers.standard.triggers.external_task": EXTERNAL_TRIGGERS,
    "airflow.providers.standard.hooks": {},
    "airflow.providers.standard.hooks.filesystem": {"FSHook": "updraft.hooks.filesystem:FSHook"},
    "airflow.providers.standard.hooks.subprocess": {
        "SubprocessHook": _u("SubprocessHook; use BashOperator or subprocess in a task")},
    "airflow.providers.standard.utils": {},
    "airflow.providers.standard.utils.weekday": {"WeekDay": "updraft.utils.weekday:WeekDay"},
    "airflow.providers.standard.utils.skipmixin": {
        "SkipMixin": "updraft.operators.skip:SkipMixin"},
    "airflow.providers.standard.decorators": {},
    # SQL
    "airflow.providers.common": {},
    "airflow.providers.common.sql": {},
    "airflow.providers.common.sql.operators": {},
    "airflow.providers.common.sql.operators.sql": SQL_OPERATORS,
    "airflow.providers.common.sql.sensors": {},
    "airflow.providers.common.sql.sensors.sql": {"SqlSensor": "updraft.sensors.sql:SqlSensor"},
    "airflow.providers.common.sql.hooks": {},
    "airflow.providers.common.sql.hooks.sql": SQL_HOOK,
    "airflow.providers.common.sql.hooks.handlers": {
        name: value for name, value in SQL_HOOK.items() if name != "DbApiHook"},
    "airflow.providers.postgres": {},
    "airflow.providers.postgres.operators": {},
    "airflow.providers.postgres.operators.postgres": {
        "PostgresOperator": "updraft.operators.sql:PostgresOperator"},
    "airflow.providers.postgres.hooks": {},
    "airflow.providers.postgres.hooks.postgres": {"PostgresHook": "updraft.hooks.sql:PostgresHook"},
    "airflow.providers.mysql": {},
    "airflow.providers.mysql.operators": {},
    "airflow.providers.mysql.operators.mysql": {
        "MySqlOperator": "updraft.operators.sql:MySqlOperator"},
    "airflow.providers.mysql.hooks": {},
    "airflow.providers.mysql.hooks.mysql": {"MySqlHook": "updraft.hooks.sql:MySqlHook"},
    "airflow.providers.sqlite": {},
    "airflow.providers.sqlite.operators": {},
    "airflow.providers.sqlite.operators.sqlite": {
        "SqliteOperator": "updraft.operators.sql:SqliteOperator"},
    "airflow.providers.sqlite.hooks": {},
    "airflow.providers.sqlite.hooks.sqlite": {"SqliteHook": "updraft.hooks.sql:SqliteHook"},
    # HTTP
    "airflow.providers.http": {},
    "airflow.providers.http.operators": {},
    "airflow.providers.http.operators.http": {
        "HttpOperator": "updraft.operators.http:HttpOperator",
        "SimpleHttpOperator": "updraft.operators.http:SimpleHttpOperator",
    },
    "airflow.providers.http.sensors": {},
    "airflow.providers.http.sensors.http": {"HttpSensor": "updraft.sensors.http:HttpSensor"},
    "airflow.providers.http.triggers": {},
    "airflow.providers.http.triggers.http": {
        "HttpSensorTrigger": "updraft.triggers.http:HttpSensorTrigger",
        "HttpTrigger": "updraft.triggers.http:HttpTrigger"},
    "airflow.providers.http.hooks": {},
    "airflow.providers.http.hooks.http": {"HttpHook": "updraft.hooks.http:HttpHook",
                                          "HttpAsyncHook": _u(_DEFERRABLE)},
    # e-mail
    "airflow.providers.smtp": {},
    "airflow.providers.smtp.operators": {},
    "airflow.providers.smtp.operators.smtp": {
        "EmailOperator": "updraft.operators.email:EmailOperator"},
    "airflow.providers.smtp.hooks": {},
    "airflow.providers.smtp.hooks.smtp": {"SmtpHook": "updraft.hooks.smtp:SmtpHook"},
    # the common.compat provider: portable paths for Airflow 2 and 3
    "airflow.providers.common.compat": {},
    "airflow.providers.common.compat.sdk": {
        **SDK, **{name: value for name, value in EXCEPTIONS.items()},
        "XCom": "updraft.models.xcom:XCom",
        "XCOM_RETURN_KEY": "updraft.models.xcom:XCOM_RETURN_KEY",
        "conf": "updraft.config:conf",
        "timezone": "updraft.utils.timezone",
    },
    "airflow.providers.common.compat.standard": {},
    "airflow.providers.common.compat.standard.operators": {
        "BaseOperator": "updraft.operators.base:BaseOperator",
        "get_current_context": "updraft.runtime_context:get_current_context",
        "PythonOperator": "updraft.operators.python:PythonOperator",
        "ShortCircuitOperator": "updraft.operators.python:ShortCircuitOperator",
        "BaseAsyncOperator": _u("async operators"),
    },
    "airflow.providers.common.compat.standard.utils": {
        "SkipMixin": "updraft.operators.skip:SkipMixin",
        "write_python_script": _u(_VENV),
        "prepare_virtualenv": _u(_VENV),
    },
    "airflow.providers.common.compat.version_compat": {
        "AIRFLOW_V_3_0_PLUS": "updraft.compat.shims:AIRFLOW_V_3_0_PLUS",
        "AIRFLOW_V_3_1_PLUS": "updraft.compat.shims:AIRFLOW_V_3_1_PLUS",
    },
    "airflow.providers.common.compat.assets": ASSETS,
    # assets and datasets
    "airflow.datasets": {"Dataset": "updraft.assets:Dataset",
                         "DatasetAlias": "updraft.assets:AssetAlias",
                         "DatasetAll": "updraft.assets:AssetAll",
                         "DatasetAny": "updraft.assets:AssetAny"},
    "airflow.datasets.metadata": {"Metadata": "updraft.assets:Metadata"},
    "airflow.assets": {},
    "airflow.sdk.definitions.asset": ASSETS,
    "airflow.sdk.definitions.asset.decorators": {"asset": "updraft.asset_decorators:asset"},
    "airflow.sdk.definitions.asset.metadata": {"Metadata": "updraft.assets:Metadata"},
    "airflow.sdk.definitions.timetables": {},
    "airflow.sdk.definitions.timetables.assets": {
        "AssetOrTimeSchedule": "updraft.schedules:AssetOrTimeSchedule"},
    "airflow.sdk.definitions.timetables.trigger": {
        "CronTriggerTimetable": "updraft.schedules:CronTriggerTimetable"},
}

ALIASES: dict[str, str] = {
    "airflow.macros": "updraft.macros",
    "airflow.utils.dates": "updraft.utils.dates",
    "airflow.utils.timezone": "updraft.utils.timezone",
    "airflow.sdk.timezone": "updraft.utils.timezone",
}

# The reason given for an Airflow module Updraft does not serve, by module prefix.
UNSUPPORTED_MODULES: dict[str, str] = {
    "airflow.partition_mappers": _PARTITIONS,
    "airflow.sdk.definitions.partition_mappers": _PARTITIONS,
    "airflow.timetables.events": "EventsTimetable",
    "airflow.triggers": _DEFERRABLE,
    "airflow.providers.standard.triggers": _WATCHER_TRIGGERS,
    "airflow.operators.subdag": "SubDagOperator; use a TaskGroup",
    "airflow.models.pool": "pools from DAG files; pass pool='name' and manage pools with "
                           "`updraft pools`",
    "airflow.io": "object storage paths (airflow.io)",
    "airflow.sdk.io": "object storage paths (airflow.io)",
    "airflow.settings": "Airflow's settings and ORM session",
    "airflow.utils.session": "direct access to Airflow's metadata database",
    "airflow.utils.db": "direct access to Airflow's metadata database",
    "airflow.secrets": ("this secrets backend; write a class with get_conn_value/"
                        "get_variable and register it in updraft.secrets_backends (README)"),
    "airflow.kubernetes": "Kubernetes pods",
    "airflow.listeners": "Airflow's listener manager; register listeners in an AirflowPlugin "
                         "or the updraft.listeners entry-point group",
    "airflow.lineage": "lineage",
    "airflow.providers.standard.operators.hitl": "human-in-the-loop operators",
    "airflow.providers.cncf.kubernetes": "the cncf.kubernetes provider, KubernetesPodOperator "
                                         "and the rest; run containers from BashOperator",
    "airflow.providers.docker": "the docker provider; run docker from BashOperator",
}


#: Airflow's example DAGs import their plugins from this package; Updraft serves each of its
#: modules from the plugins folder (``airflow.example_dags.plugins.workday`` is the
#: plugins-folder module ``workday``).
EXAMPLE_PLUGINS = "airflow.example_dags.plugins"


def plugin_alias(name: str) -> str | None:
    """The plugins-folder module that the Airflow module ``name`` stands for, or None."""
    prefix = EXAMPLE_PLUGINS + "."
    if name.startswith(prefix) and "." not in name[len(prefix):]:
        return name[len(prefix):]
    return None


def is_known_module(name: str) -> bool:
    """Whether ``name`` is an Airflow module (or a package of one) that Updraft serves."""
    return (name in MODULES or name in ALIASES or name in _PACKAGES
            or name in ("airflow.example_dags", EXAMPLE_PLUGINS) or plugin_alias(name) is not None)


def _packages() -> frozenset[str]:
    names: set[str] = set()
    for module in list(MODULES) + list(ALIASES):
        parts = module.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(names)


_PACKAGES = _packages()


def unsupported_module_reason(name: str) -> str:
    """Why the Airflow module ``name`` is not served (the most specific reason known)."""
    best = ""
    for prefix in UNSUPPORTED_MODULES:
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    if best:
        return UNSUPPORTED_MODULES[best]
    parts = name.split(".")
    if len(parts) >= 3 and parts[1] == "providers":
        provider = ".".join(parts[2:4]) if parts[2] in ("common", "apache", "cncf",
                                                         "microsoft") else parts[2]
        return f"the {provider} provider is not part of Updraft"
    return "no Updraft equivalent"


def lookup(module: str, name: str) -> str | Unsupported | None:
    """Where the Airflow name ``module.name`` comes from in Updraft, Unsupported, or None
    when the table does not list it (for an alias: the name is looked up in the module)."""
    names = MODULES.get(module)
    if names is not None and name in names:
        return names[name]
    if module in ALIASES:
        return f"{ALIASES[module]}:{name}"
    return None


#: The operators and sensors that take ``deferrable=True`` in Updraft (ADR 11); any other
#: refuses it.
DEFERRABLE_OPERATORS = frozenset({
    "TimeDeltaSensor", "DateTimeSensor", "TimeSensor", "FileSensor", "ExternalTaskSensor",
    "TriggerDagRunOperator", "HttpSensor", "SqlSensor", "TimeDeltaSensorAsync",
    "DateTimeSensorAsync", "TimeSensorAsync", "NatsMessageSensor", "HttpOperator",
    "SimpleHttpOperator"})

# Operator arguments Airflow has that change behaviour and that Updraft does not support.
# The value is the only setting that is harmless (dropped); any other raises.
UNSUPPORTED_OPERATOR_KWARGS: dict[str, tuple[object, str]] = {
    "deferrable": (False, _DEFERRABLE),
}
