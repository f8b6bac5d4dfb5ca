"""SQL operators with Airflow's common-sql behaviour: run statements, check data, branch.

Each operator finds its hook from the connection's type (``Connection.get_hook``), so one
``conn_id`` works for PostgreSQL, MySQL/MariaDB and SQLite. Failed checks raise
``UpdraftException`` (retried) or, with ``retry_on_failure=False``, ``UpdraftFailException``,
with Airflow's messages. The historical ``PostgresOperator``, ``MySqlOperator`` and
``SqliteOperator`` are ``SQLExecuteQueryOperator`` with their own connection argument.
"""

from __future__ import annotations

import ast
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, NoReturn

from updraft.exceptions import UpdraftException, UpdraftFailException
from updraft.hooks.base import BaseHook
from updraft.hooks.sql import (
    SqlHook,
    fetch_all_handler,
    fetch_one_handler,
    return_single_query_results,
)
from updraft.operators.base import BaseOperator
from updraft.operators.skip import SkipMixin


def _convert_to_float_if_possible(value: Any) -> Any:
    try:
        return float(value)
    except (ValueError, TypeError):
        return value


def _parse_boolean(val: str) -> bool:
    val = val.lower()
    if val in ("y", "yes", "t", "true", "on", "1"):
        return True
    if val in ("n", "no", "f", "false", "off", "0"):
        return False
    raise ValueError(f"{val!r} is not a boolean-like string value")


parse_boolean = _parse_boolean


def _initialize_partition_clause(clause: str | None) -> str | None:
    if clause is not None and ";" in clause:
        raise ValueError("Invalid partition_clause: semicolons (;) not allowed.")
    return clause


def json_safe(value: Any) -> Any:
    """Query results as plain JSON values: rows as lists, Decimal as int/float, dates as ISO."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and \
                value.as_tuple().exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: json_safe(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(item) for item in value]
    return str(value)


def default_output_processor(results: list[Any], descriptions: list) -> list[Any]:
    return results


class BaseSQLOperator(BaseOperator):
    """Finds the database hook for ``conn_id`` from its connection type."""

    conn_id_field = "conn_id"
    template_fields: Sequence[str] = ("conn_id", "database", "hook_params")

    def __init__(self, *, conn_id: str | None = None, database: str | None = None,
                 hook_params: dict | None = None, retry_on_failure: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.database = database
        self.hook_params = hook_params or {}
        self.retry_on_failure = retry_on_failure
        self._hook_cache: SqlHook | None = None

    def get_db_hook(self) -> SqlHook:
        """The SQL hook of the connection (built once per task try)."""
        if self._hook_cache is not None:
            return self._hook_cache
        conn_id = getattr(self, self.conn_id_field)
        if not conn_id:
            raise UpdraftException(f"Task {self.task_id!r}: no connection id given "
                                   f"({self.conn_id_field} is empty)")
        connection = BaseHook.get_connection(conn_id)
        hook_params = dict(self.hook_params or {})
        for key, value in connection.extra_dejson.items():
            hook_params.setdefault(key, value)
        hook = connection.get_hook(hook_params=hook_params)
        if not isinstance(hook, SqlHook):
            raise UpdraftException(
                f"You are trying to use `common-sql` with {type(hook).__name__}, but its "
                "provider does not support it. The hook class should be a subclass of "
                "`updraft.hooks.sql.DbApiHook`.")
        if self.database:
            hook.schema = self.database
        self._hook_cache = hook
        return hook

    @property
    def _hook(self) -> SqlHook:
        return self.get_db_hook()

    def _raise_exception(self, exception_string: str) -> NoReturn:
        if self.retry_on_failure:
            raise UpdraftException(exception_string)
        raise UpdraftFailException(exception_string)

    def __deepcopy__(self, memo):
        result = super().__deepcopy__(memo)
        result._hook_cache = None
        return result


class SQLExecuteQueryOperator(BaseSQLOperator):
    """Runs SQL (a string, a list, or a ``.sql`` template file); its result is the XCom."""

    template_fields: Sequence[str] = ("sql", "parameters", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".sql", ".json")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "parameters": "json"}
    ui_color = "#cdaaed"

    def __init__(self, *, sql: str | list[str], autocommit: bool = False,
                 parameters: Mapping | Iterable | None = None,
                 handler: Callable[[Any], Any] = fetch_all_handler,
                 output_processor: Callable | None = None, conn_id: str | None = None,
                 database: str | None = None, split_statements: bool | None = None,
                 return_last: bool = True, show_return_value_in_logs: bool = False,
                 requires_result_fetch: bool = False, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.sql = sql
        self.autocommit = autocommit
        self.parameters = parameters
        self.handler = handler
        self._output_processor = output_processor or default_output_processor
        self.split_statements = split_statements
        self.return_last = return_last
        self.show_return_value_in_logs = show_return_value_in_logs
        self.requires_result_fetch = requires_result_fetch

    def prepare_template(self) -> None:
        if isinstance(self.parameters, str):
            self.parameters = ast.literal_eval(self.parameters)

    def _process_output(self, results: list[Any], descriptions: list) -> list[Any]:
        if self.show_return_value_in_logs:
            self.log.info("Operator output is: %s", results)
        return self._output_processor(results, descriptions)

    def execute(self, context: dict) -> Any:
        self.log.info("Executing: %s", self.sql)
        hook = self.get_db_hook()
        extra: dict[str, Any] = {}
        if self.split_statements is not None:
            extra["split_statements"] = self.split_statements
        fetch = self.do_xcom_push or self.requires_result_fetch
        output = hook.run(sql=self.sql, autocommit=self.autocommit, parameters=self.parameters,
                          handler=self.handler if fetch else None, return_last=self.return_last,
                          **extra)
        if not self.do_xcom_push:
            return None
        if return_single_query_results(self.sql, self.return_last, self.split_statements):
            return json_safe(self._process_output([output], hook.descriptions)[-1])
        result = self._process_output(output, hook.descriptions)
        self.log.info("result: %s", result)
        return json_safe(result)


class PostgresOperator(SQLExecuteQueryOperator):
    """Airflow's historical Postgres operator: ``postgres_conn_id``, ``sql``, ``parameters``."""

    def __init__(self, *, postgres_conn_id: str = "postgres_default",
                 database: str | None = None, runtime_parameters: Mapping | None = None,
                 **kwargs: Any) -> None:
        if runtime_parameters:
            from updraft.exceptions import NotSupportedByUpdraft

            raise NotSupportedByUpdraft("not supported by Updraft: runtime_parameters on "
                                        "PostgresOperator (put SET statements in the sql)")
        kwargs.setdefault("conn_id", postgres_conn_id)
        super().__init__(database=database, **kwargs)
        self.postgres_conn_id = kwargs["conn_id"]


class MySqlOperator(SQLExecuteQueryOperator):
    """Airflow's historical MySQL operator: ``mysql_conn_id``, ``sql``, ``parameters``."""

    def __init__(self, *, mysql_conn_id: str = "mysql_default", database: str | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("conn_id", mysql_conn_id)
        super().__init__(database=database, **kwargs)
        self.mysql_conn_id = kwargs["conn_id"]


class SqliteOperator(SQLExecuteQueryOperator):
    """Airflow's historical SQLite operator: ``sqlite_conn_id``, ``sql``, ``parameters``."""

    def __init__(self, *, sqlite_conn_id: str = "sqlite_default", **kwargs: Any) -> None:
        kwargs.setdefault("conn_id", sqlite_conn_id)
        super().__init__(**kwargs)
        self.sqlite_conn_id = kwargs["conn_id"]


class SQLCheckOperator(BaseSQLOperator):
    """Fails unless every value of the query's first row is truthy."""

    template_fields: Sequence[str] = ("sql", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".hql", ".sql")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}
    ui_color = "#fff7e6"

    def __init__(self, *, sql: str, conn_id: str | None = None, database: str | None = None,
                 parameters: Iterable | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.sql = sql
        self.parameters = parameters

    def execute(self, context: dict) -> None:
        self.log.info("Executing SQL check: %s", self.sql)
        records = self.get_db_hook().get_first(self.sql, self.parameters)
        self.log.info("Record: %s", records)
        if not records:
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        elif isinstance(records, dict) and not all(records.values()) or not all(records):
            self._raise_exception(f"Test failed.\nQuery:\n{self.sql}\nResults:\n{records!s}")
        self.log.info("Success.")


class SQLValueCheckOperator(BaseSQLOperator):
    """Fails unless each value of the first row equals ``pass_value`` (within ``tolerance``)."""

    template_fields: Sequence[str] = ("sql", "pass_value", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".hql", ".sql")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}
    ui_color = "#fff7e6"

    def __init__(self, *, sql: str, pass_value: Any, tolerance: Any = None,
                 conn_id: str | None = None, database: str | None = None,
                 parameters: Iterable | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.sql = sql
        self.pass_value = str(pass_value)
        tol = _convert_to_float_if_possible(tolerance)
        self.tol = tol if isinstance(tol, float) else None
        self.has_tolerance = self.tol is not None
        self.parameters = parameters

    def check_value(self, records: Any) -> None:
        """Compare a row with the pass value; raise with Airflow's message if it differs."""
        if not records:
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        pass_value_conv = _convert_to_float_if_possible(self.pass_value)
        is_numeric = isinstance(pass_value_conv, float)
        tolerance = f"{self.tol:.1%}" if self.tol is not None else None
        error_msg = (f"Test failed.\nPass value:{pass_value_conv}\nTolerance:{tolerance}\n"
                     f"Query:\n{self.sql}\nResults:\n{records!s}")
        if not is_numeric:
            tests = [str(record) == pass_value_conv for record in records]
        else:
            try:
                numbers = [float(record) for record in records]
            except (ValueError, TypeError):
                raise UpdraftException(f"Converting a result to float failed.\n{error_msg}") \
                    from None
            if self.has_tolerance:
                tests = [pass_value_conv * (1 - self.tol) <= n <= pass_value_conv * (1 + self.tol)
                         for n in numbers]
            else:
                tests = [n == pass_value_conv for n in numbers]
        if not all(tests):
            self._raise_exception(error_msg)

    def execute(self, context: dict) -> None:
        self.log.info("Executing SQL check: %s", self.sql)
        self.check_value(self.get_db_hook().get_first(self.sql, self.parameters))


class SQLIntervalCheckOperator(BaseSQLOperator):
    """Checks that metrics (SQL expressions) are within a ratio of those ``days_back`` ago."""

    template_fields: Sequence[str] = ("sql1", "sql2", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".hql", ".sql")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql1": "sql", "sql2": "sql"}
    ui_color = "#fff7e6"

    ratio_formulas: ClassVar[dict[str, Callable]] = {
        "max_over_min": lambda cur, ref: max(cur, ref) / min(cur, ref),
        "relative_diff": lambda cur, ref: abs(cur - ref) / ref,
    }

    def __init__(self, *, table: str, metrics_thresholds: dict[str, Any],
                 date_filter_column: str | None = "ds", days_back: int = -7,
                 ratio_formula: str | None = "max_over_min", ignore_zero: bool = True,
                 conn_id: str | None = None, database: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        if ratio_formula not in self.ratio_formulas:
            raise UpdraftFailException(f"Invalid diff_method: {ratio_formula}. Supported diff "
                                       f"methods are: {self.ratio_formulas}")
        self.ratio_formula = ratio_formula
        self.ignore_zero = ignore_zero
        self.table = table
        self.metrics_thresholds = metrics_thresholds
        self.metrics_sorted = sorted(metrics_thresholds)
        self.date_filter_column = date_filter_column
        self.days_back = -abs(days_back)
        sqlt = (f"SELECT {', '.join(self.metrics_sorted)} FROM {table} "
                f"WHERE {date_filter_column}=")
        self.sql1 = f"{sqlt}'{{{{ ds }}}}'"
        self.sql2 = f"{sqlt}'{{{{ macros.ds_add(ds, {self.days_back}) }}}}'"

    def execute(self, context: dict) -> None:
        hook = self.get_db_hook()
        self.log.info("Using ratio formula: %s", self.ratio_formula)
        self.log.info("Executing SQL check: %s", self.sql2)
        row2 = hook.get_first(self.sql2)
        self.log.info("Executing SQL check: %s", self.sql1)
        row1 = hook.get_first(self.sql1)
        if not row2:
            self._raise_exception(f"The following query returned zero rows: {self.sql2}")
        if not row1:
            self._raise_exception(f"The following query returned zero rows: {self.sql1}")
        current = dict(zip(self.metrics_sorted, row1))
        reference = dict(zip(self.metrics_sorted, row2))
        ratios: dict[str, Any] = {}
        results: dict[str, bool] = {}
        for metric in self.metrics_sorted:
            cur, ref = current[metric], reference[metric]
            threshold = self.metrics_thresholds[metric]
            if cur == 0 or ref == 0:
                ratios[metric] = None
                results[metric] = self.ignore_zero
            else:
                ratios[metric] = self.ratio_formulas[self.ratio_formula](cur, ref)
                results[metric] = ratios[metric] < threshold
            self.log.info("Current metric for %s: %s\nPast metric for %s: %s\nRatio for %s: "
                          "%s\nThreshold: %s\n", metric, cur, metric, ref, metric,
                          ratios[metric], threshold)
        failed = [metric for metric, ok in results.items() if not ok]
        if failed:
            self.log.warning("The following %s tests out of %s failed:", len(failed),
                             len(self.metrics_sorted))
            for metric in failed:
                self.log.warning("'%s' check failed. %s is above %s", metric, ratios[metric],
                                 self.metrics_thresholds[metric])
            self._raise_exception(f"The following tests have failed:\n "
                                  f"{', '.join(sorted(failed))}")
        self.log.info("All tests have passed")


class SQLThresholdCheckOperator(BaseSQLOperator):
    """Fails unless the query's value lies between two thresholds (numbers or SQL)."""

    template_fields: Sequence[str] = ("sql", "min_threshold", "max_threshold",
                                      *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".hql", ".sql")
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}

    def __init__(self, *, sql: str, min_threshold: Any, max_threshold: Any,
                 conn_id: str | None = None, database: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.sql = sql
        self.min_threshold = min_threshold
        self.max_threshold = max_threshold

    def execute(self, context: dict) -> None:
        hook = self.get_db_hook()
        result = hook.get_first(self.sql)
        try:
            result = result[0]
        except (TypeError, IndexError):
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        min_threshold = _convert_to_float_if_possible(self.min_threshold)
        max_threshold = _convert_to_float_if_possible(self.max_threshold)
        lower = min_threshold if isinstance(min_threshold, float) else \
            hook.get_first(min_threshold)[0]
        upper = max_threshold if isinstance(max_threshold, float) else \
            hook.get_first(max_threshold)[0]
        meta_data = {"result": result, "task_id": self.task_id, "min_threshold": lower,
                     "max_threshold": upper, "within_threshold": lower <= result <= upper}
        self.push(meta_data)
        if not meta_data["within_threshold"]:
            shown = round(result, 2) if result is not None else "<None>"
            self._raise_exception(
                f'Threshold Check: "{self.task_id}" failed.\n'
                f"DAG: {self.dag_id}\nTask_id: {self.task_id}\n"
                f"Check description: {meta_data.get('description')}\n"
                f"SQL: {self.sql}\n"
                f"Result: {shown} is not within thresholds {lower} and {upper}")
        self.log.info("Test %s Successful.", self.task_id)

    def push(self, meta_data: dict) -> None:
        """Report the check's metadata (logged; subclasses may send it elsewhere)."""
        info = "\n".join(f"{key}: {item}" for key, item in meta_data.items())
        self.log.info("Log from %s:\n%s", self.dag_id, info)


class SQLColumnCheckOperator(BaseSQLOperator):
    """Runs per-column checks (null, distinct, unique, min, max) against expected values."""

    template_fields: Sequence[str] = ("table", "partition_clause", "sql",
                                      *BaseSQLOperator.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}

    sql_check_template = """
        SELECT '{column}' AS col_name, '{check}' AS check_type, {column}_{check} AS check_result
        FROM (SELECT {check_statement} AS {column}_{check} FROM {table} {partition_clause}) AS sq
    """
    column_checks: ClassVar[dict[str, str]] = {
        "null_check": "SUM(CASE WHEN {column} IS NULL THEN 1 ELSE 0 END)",
        "distinct_check": "COUNT(DISTINCT({column}))",
        "unique_check": "COUNT({column}) - COUNT(DISTINCT({column}))",
        "min": "MIN({column})",
        "max": "MAX({column})",
    }

    def __init__(self, *, table: str, column_mapping: dict[str, dict[str, Any]],
                 partition_clause: str | None = None, conn_id: str | None = None,
                 database: str | None = None, accept_none: bool = True, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.table = table
        self.column_mapping = column_mapping
        self.partition_clause = _initialize_partition_clause(partition_clause)
        self.accept_none = accept_none
        parts = []
        for column, checks in self.column_mapping.items():
            for check, check_values in checks.items():
                self._column_mapping_validation(check, check_values)
            parts.append(self._generate_sql_query(column, checks))
        self.sql = (f"SELECT col_name, check_type, check_result FROM ({'UNION ALL'.join(parts)})"
                    " AS check_columns")

    def execute(self, context: dict) -> None:
        records = self.get_db_hook().get_records(self.sql)
        if not records:
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        self.log.info("Record: %s", records)
        for column, check, result in records:
            values = self.column_mapping[column][check]
            values["result"] = result
            values["success"] = self._get_match(values, result, values.get("tolerance"))
        failed = [f"Column: {col}\n\tCheck: {check},\n\tCheck Values: {values}\n"
                  for col, checks in self.column_mapping.items()
                  for check, values in checks.items() if not values["success"]]
        if failed:
            self._raise_exception(f"Test failed.\nResults:\n{records!s}\n"
                                  f"The following tests have failed:\n{''.join(failed)}")
        self.log.info("All tests have passed")

    def _partition(self, check_values: dict) -> str:
        own = check_values.get("partition_clause")
        if self.partition_clause and own:
            return f"WHERE {self.partition_clause} AND {own}"
        if self.partition_clause or own:
            return f"WHERE {self.partition_clause or own}"
        return ""

    def _generate_sql_query(self, column: str, checks: dict) -> str:
        return "UNION ALL".join(
            self.sql_check_template.format(
                check_statement=self.column_checks[check].format(column=column), check=check,
                table=self.table, column=column, partition_clause=self._partition(checks[check]))
            for check in checks)

    def _get_match(self, check_values: dict, record: Any, tolerance: Any = None) -> bool:
        if record is None and self.accept_none:
            record = 0
        if isinstance(record, Decimal):
            record = float(record)
        match = True
        if "geq_to" in check_values:
            bound = check_values["geq_to"] * (1 - tolerance) if tolerance is not None \
                else check_values["geq_to"]
            match = record >= bound
        elif "greater_than" in check_values:
            bound = check_values["greater_than"] * (1 - tolerance) if tolerance is not None \
                else check_values["greater_than"]
            match = record > bound
        if "leq_to" in check_values:
            bound = check_values["leq_to"] * (1 + tolerance) if tolerance is not None \
                else check_values["leq_to"]
            match = record <= bound and match
        elif "less_than" in check_values:
            bound = check_values["less_than"] * (1 + tolerance) if tolerance is not None \
                else check_values["less_than"]
            match = record < bound and match
        if "equal_to" in check_values:
            expected = check_values["equal_to"]
            if tolerance is not None:
                match = expected * (1 - tolerance) <= record <= expected * (1 + tolerance) \
                    and match
            else:
                match = record == expected and match
        return match

    def _column_mapping_validation(self, check: str, check_values: dict) -> None:
        if check not in self.column_checks:
            raise UpdraftException(f"Invalid column check: {check}.")
        keys = set(check_values)
        if not keys & {"greater_than", "geq_to", "less_than", "leq_to", "equal_to"}:
            raise ValueError("Please provide one or more of: less_than, leq_to, greater_than, "
                             "geq_to, or equal_to in the check's dict.")
        v = check_values
        if {"greater_than", "less_than"} <= keys and v["greater_than"] >= v["less_than"]:
            raise ValueError("greater_than should be strictly less than less_than. Use geq_to "
                             "or leq_to for overlapping equality.")
        if {"greater_than", "leq_to"} <= keys and v["greater_than"] >= v["leq_to"]:
            raise ValueError("greater_than must be strictly less than leq_to. Use geq_to with "
                             "leq_to for overlapping equality.")
        if {"geq_to", "less_than"} <= keys and v["geq_to"] >= v["less_than"]:
            raise ValueError("geq_to should be strictly less than less_than. Use leq_to with "
                             "geq_to for overlapping equality.")
        if {"geq_to", "leq_to"} <= keys and v["geq_to"] > v["leq_to"]:
            raise ValueError("geq_to should be less than or equal to leq_to.")
        if {"greater_than", "geq_to"} <= keys:
            raise ValueError("Only supply one of greater_than or geq_to.")
        if {"less_than", "leq_to"} <= keys:
            raise ValueError("Only supply one of less_than or leq_to.")
        if keys & {"greater_than", "geq_to", "less_than", "leq_to"} and "equal_to" in keys:
            raise ValueError("equal_to cannot be passed with a greater or less than function. "
                             "To specify 'greater than or equal to' or 'less than or equal "
                             "to', use geq_to or leq_to.")


class SQLTableCheckOperator(BaseSQLOperator):
    """Runs boolean checks over a whole table: ``{name: {"check_statement": ...}}``."""

    template_fields: Sequence[str] = ("table", "partition_clause", "sql",
                                      *BaseSQLOperator.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}

    sql_check_template = """
    SELECT '{check_name}' AS check_name, MIN({check_name}) AS check_result
    FROM (SELECT CASE WHEN {check_statement} THEN 1 ELSE 0 END AS {check_name}
          FROM {table} {partition_clause}) AS sq
    """

    def __init__(self, *, table: str, checks: dict[str, dict[str, Any]],
                 partition_clause: str | None = None, conn_id: str | None = None,
                 database: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.table = table
        self.checks = checks
        self.partition_clause = _initialize_partition_clause(partition_clause)
        self.sql = (f"SELECT check_name, check_result FROM ({self._generate_sql_query()}) "
                    "AS check_table")

    def execute(self, context: dict) -> None:
        records = self.get_db_hook().get_records(self.sql)
        if not records:
            self._raise_exception(f"The following query returned zero rows: {self.sql}")
        self.log.info("Record:\n%s", records)
        for check, result in records:
            self.checks[check]["success"] = _parse_boolean(str(result))
        failed = [f"\tCheck: {check},\n\tCheck Values: {values}\n"
                  for check, values in self.checks.items() if not values["success"]]
        if failed:
            self._raise_exception(f"Test failed.\nQuery:\n{self.sql}\nResults:\n{records!s}\n"
                                  f"The following tests have failed:\n{', '.join(failed)}")
        self.log.info("All tests have passed")

    def _generate_sql_query(self) -> str:
        def partition(name: str) -> str:
            own = self.checks[name].get("partition_clause")
            if self.partition_clause and own:
                return f"WHERE {self.partition_clause} AND {own}"
            if self.partition_clause or own:
                return f"WHERE {self.partition_clause or own}"
            return ""

        return "UNION ALL".join(
            self.sql_check_template.format(check_statement=value["check_statement"],
                                           check_name=name, table=self.table,
                                           partition_clause=partition(name))
            for name, value in self.checks.items())


class BranchSQLOperator(BaseSQLOperator, SkipMixin):
    """Follows ``follow_task_ids_if_true`` or ``..._if_false`` by the query's boolean result."""

    template_fields: Sequence[str] = ("sql", *BaseSQLOperator.template_fields)
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql"}
    ui_color = "#a22034"
    ui_fgcolor = "#F7F7F7"
    inherits_from_skipmixin = True

    def __init__(self, *, sql: str, follow_task_ids_if_true: str | list[str],
                 follow_task_ids_if_false: str | list[str], conn_id: str = "default_conn_id",
                 database: str | None = None,
                 parameters: Iterable | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id=conn_id, database=database, **kwargs)
        self.sql = sql
        self.parameters = parameters
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false

    def execute(self, context: dict) -> None:
        self.log.info("Executing: %s (with parameters %s) with connection: %s", self.sql,
                      self.parameters, self.conn_id)
        record = self.get_db_hook().get_first(self.sql, self.parameters)
        if record is None:
            raise UpdraftException("No rows returned from sql query. Operator expected True or "
                                   "False return value.")
        if isinstance(record, list):
            result = record[0][0] if isinstance(record[0], list) else record[0]
        elif isinstance(record, tuple):
            result = record[0]
        else:
            result = record
        self.log.info("Query returns %s, type '%s'", result, type(result))
        unexpected = UpdraftException(f"Unexpected query return result '{result}' type "
                                      f"'{type(result)}'")
        try:
            if isinstance(result, bool):
                truth = result
            elif isinstance(result, str):
                truth = _parse_boolean(result)
            elif isinstance(result, (int, Decimal)):
                truth = bool(result)
            else:
                raise unexpected
        except ValueError:
            raise unexpected from None
        follow = self.follow_task_ids_if_true if truth else self.follow_task_ids_if_false
        self.skip_all_except(context, follow)


__all__ = ["BaseSQLOperator", "BranchSQLOperator", "MySqlOperator", "PostgresOperator",
           "SQLCheckOperator", "SQLColumnCheckOperator", "SQLExecuteQueryOperator",
           "SQLIntervalCheckOperator", "SQLTableCheckOperator", "SQLThresholdCheckOperator", "SQLValueCheckOperator",
           "SqliteOperator", "fetch_all_handler", "fetch_one_handler", "json_safe"]
