"""Helpers that the dags and tasks commands share: loading DAGs, parsing dates, printing runs."""

from __future__ import annotations

from datetime import datetime

import click


def load_dagbag():
    """The DagBag of the configured DAGs folder (examples included if configured)."""
    from updraft.dagbag import DagBag

    return DagBag()


def get_dag_or_fail(dag_id: str):
    """Load the DAG ``dag_id`` from the DAGs folder, or exit with a precise message."""
    from updraft.config import conf

    bag = load_dagbag()
    dag = bag.get_dag(dag_id)
    if dag is not None:
        return dag
    folder = conf.dags_folder()
    message = f"DAG {dag_id!r} not found in {folder} ({len(bag.dags)} DAG(s) loaded"
    if bag.dags:
        message += ": " + ", ".join(sorted(bag.dags)[:20])
    message += ")"
    if bag.import_errors:
        message += "\nThese files failed to import:\n"
        for path, error in bag.import_errors.items():
            last = error.strip().splitlines()[-1] if error.strip() else error
            message += f"  {path}: {last}\n"
    raise click.ClickException(message.rstrip())


def parse_date(value: str | None, timezone=None, what: str = "date") -> datetime | None:
    """Parse a date or datetime given on the command line (ISO 8601 or YYYY-MM-DD)."""
    if value is None:
        return None
    from updraft.schedules import coerce_datetime

    try:
        return coerce_datetime(value, timezone or "UTC")
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD or ISO 8601): "
                                 f"{exc}", param_hint=what) from None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def find_run(session, dag_id: str, run_id_or_date: str):
    """A run by run id, or else by its logical date; None if neither matches."""
    from sqlalchemy import select

    from updraft.store.models import DagRunModel

    run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                   DagRunModel.run_id == run_id_or_date))
    if run is not None:
        return run
    try:
        when = parse_date(run_id_or_date)
    except click.BadParameter:
        return None
    return session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                    DagRunModel.logical_date == when))
