"""``updraft tasks logs``: print a try's log from its file, or follow a running try live.

The log file is read where ``[logging] base_log_folder`` says (a filesystem shared with the
workers is assumed, as with Airflow's local logs). ``--follow`` subscribes to the try's live
subject first, then prints the file so far (its first N complete lines), then every live
line whose ``seq`` is past N, until the worker's end-of-log marker arrives or the store says
the try is no longer queued or running; the rest of the file is printed at the end, so a
line lost on the bus still shows. Without NATS, ``--follow`` tails the file.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from updraft.state import IN_FLIGHT_STATES, TaskInstanceState as TI

#: The try's log may still grow.
ACTIVE_STATES = IN_FLIGHT_STATES | {TI.UP_FOR_RESCHEDULE}
STATE_POLL = 0.5


def _ti(dag_id: str, run_id: str, task_id: str, map_index: int):
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel

    with session_scope() as session:
        return session.execute(select(TaskInstanceModel.state, TaskInstanceModel.try_number)
                               .where(TaskInstanceModel.dag_id == dag_id,
                                      TaskInstanceModel.run_id == run_id,
                                      TaskInstanceModel.task_id == task_id,
                                      TaskInstanceModel.map_index == map_index)).first()


def _try_active(dag_id: str, run_id: str, task_id: str, map_index: int,
                try_number: int) -> bool:
    row = _ti(dag_id, run_id, task_id, map_index)
    return row is not None and row.try_number == try_number and row.state in ACTIVE_STATES


class _FileReader:
    """Prints complete lines of the log file, each once, counting them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def print_new(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = len(data) if final else data.rfind(b"\n") + 1
        if end <= 0:
            return
        chunk = data[:end].decode("utf-8", errors="replace")
        self.offset += end
        for line in chunk.splitlines():
            self.lines += 1
            click.echo(line)

    def skip_to(self, seq: int) -> None:
        """Lines up to ``seq`` were printed from the bus: advance past them in the file."""
        if seq <= self.lines:
            return
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        position = 0
        while self.lines < seq:
            newline = data.find(b"\n", position)
            if newline < 0:
                break
            position = newline + 1
            self.lines += 1
        self.offset += position


async def _follow_live(reader: _FileReader, subject: str, still_active) -> bool:
    """Print live lines until the try ends; False if NATS could not be reached."""
    from bus.connection import BusUnavailable, connect
    from bus.schemas import LogLine, SchemaError, decode

    try:
        nc = await connect(name="updraft-tasks-logs")
    except BusUnavailable as exc:
        click.echo(f"(live logs unavailable: {exc}; following the file)", err=True)
        return False
    lines: asyncio.Queue = asyncio.Queue()

    async def on_line(msg):
        try:
            lines.put_nowait(decode(LogLine, msg.data))
        except SchemaError:
            pass

    try:
        await nc.subscribe(subject, cb=on_line)
        await nc.flush()
        reader.print_new()
        next_check = time.monotonic() + STATE_POLL
        while True:
            try:
                line = await asyncio.wait_for(lines.get(), timeout=STATE_POLL)
            except TimeoutError:
                line = None
            if line is not None:
                if line.eof:
                    break
                if line.seq > reader.lines:
                    # Lines missed on the bus are in the file: print them first.
                    if line.seq > reader.lines + 1:
                        reader.print_new()
                    if line.seq > reader.lines:
                        click.echo(line.line)
                        reader.skip_to(line.seq)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + STATE_POLL
                if not await asyncio.get_running_loop().run_in_executor(None, still_active):
                    break
    finally:
        await nc.close()
    reader.print_new(final=True)
    return True


def show_logs(dag_id: str, run_id: str, task_id: str, try_number: int | None = None,
              map_index: int = -1, follow: bool = False) -> None:
    """Print the log of one try (default: the latest); with ``follow``, until it ends."""
    from bus import subjects
    from updraft.config import conf
    from updraft.tasklog import try_log_path

    row = _ti(dag_id, run_id, task_id, map_index)
    if row is None:
        raise click.ClickException(f"No task instance {task_id}[{map_index}] in run {run_id} "
                                   f"of {dag_id}")
    if try_number is None:
        try_number = row.try_number
    if try_number < 1:
        raise click.ClickException(f"{task_id} has not run yet in {run_id} (state "
                                   f"{row.state}): no log")
    path = try_log_path(conf.log_folder(), dag_id, run_id, task_id, map_index, try_number)

    def still_active() -> bool:
        return _try_active(dag_id, run_id, task_id, map_index, try_number)

    reader = _FileReader(path)
    if not follow or not still_active():
        if not path.exists():
            raise click.ClickException(f"No log for try {try_number} of {task_id} in {run_id} "
                                       f"(looked in {path})")
        reader.print_new(final=True)
        return
    subject = subjects.log(dag_id, run_id, task_id, try_number, map_index)
    if asyncio.run(_follow_live(reader, subject, still_active)):
        return
    while still_active():  # no NATS: tail the file
        reader.print_new()
        time.sleep(STATE_POLL)
    reader.print_new(final=True)
