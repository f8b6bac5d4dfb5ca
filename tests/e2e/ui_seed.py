"""History for the browser tests of the UI's depth: finished runs of ``e2e_demo`` written
straight into the store (already finished, so the scheduler leaves them alone), with tries,
queued times and log files, and a watcher that fails a page on a JavaScript error or a 4xx
or 5xx answer. Screenshots go to tests/e2e/screenshots/ (git-ignored)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
TASKS = ("start", "work.slow", "work.check", "end")
FIRST_DAY = datetime(2025, 1, 1, 6, 0, tzinfo=UTC)

LOG_LINES = [
    "[2025-01-01T06:00:01Z] {runtime.py:88} INFO - Running try 1 of work.slow",
    "[2025-01-01T06:00:01Z] {runtime.py:90} DEBUG - template fields rendered",
    *[f"[2025-01-01T06:00:{i % 60:02d}Z] {{task.py:12}} INFO - working line {i} of 120"
      for i in range(2, 120)],
    "[2025-01-01T06:02:00Z] {task.py:20} WARNING - the lake is slow today",
    "[2025-01-01T06:02:01Z] {task.py:22} ERROR - needle: the third partition failed once",
    "[2025-01-01T06:02:02Z] {runtime.py:140} INFO - Task finished: success",
    '[2025-01-01T06:02:03Z] {task.py:30} INFO - markup stays text: <img src=x '
    'onerror="window.__xss=1">',
]


def seed_history(runs: int = 40) -> list[str]:
    """``runs`` finished runs, one a day from 2025-01-01 (every 7th failed, its check task
    on its second try); returns their run ids, oldest first."""
    from updraft.config import conf
    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel, TaskInstanceModel, TaskInstanceTry
    from updraft.tasklog import try_log_path

    ids = []
    folder = conf.log_folder()
    with session_scope() as session:
        for i in range(runs):
            run_id = f"seed_{i:02d}"
            ids.append(run_id)
            day = FIRST_DAY + timedelta(days=i)
            failed = i % 7 == 6
            clock = day + timedelta(seconds=5)
            session.add(DagRunModel(
                dag_id="e2e_demo", run_id=run_id, state="failed" if failed else "success",
                run_type="scheduled", logical_date=day, data_interval_start=day,
                data_interval_end=day, queued_at=day, start_date=day + timedelta(seconds=2),
                end_date=day + timedelta(seconds=30 + (i % 10) * 20), external_trigger=False))
            for task_id in TASKS:
                seconds = 4.0 + (i % 10) * (3 if task_id == "work.slow" else 1)
                state = "success"
                tries = 1
                if failed and task_id == "work.check":
                    state, tries = "failed", 2
                elif failed and task_id == "end":
                    state, tries = "upstream_failed", 0
                start = clock + timedelta(seconds=1)
                end = start + timedelta(seconds=seconds)
                if tries == 2:
                    session.add(TaskInstanceTry(
                        dag_id="e2e_demo", run_id=run_id, task_id=task_id, map_index=-1,
                        try_number=1, state="failed", start_date=start,
                        end_date=start + timedelta(seconds=2), duration=2.0,
                        error="AssertionError"))
                    start = start + timedelta(seconds=5)
                    end = start + timedelta(seconds=seconds)
                ti = TaskInstanceModel(
                    dag_id="e2e_demo", run_id=run_id, task_id=task_id, map_index=-1,
                    state=state, try_number=tries, max_tries=1 if tries == 2 else 0,
                    start_date=start if tries else None, end_date=end if tries else None,
                    duration=seconds if tries else None,
                    queued_dttm=clock if tries else None, hostname="seed-host",
                    operator="@task", pool="default_pool")
                session.add(ti)
                if tries:
                    session.add(TaskInstanceTry(
                        dag_id="e2e_demo", run_id=run_id, task_id=task_id, map_index=-1,
                        try_number=tries, state=state, start_date=start, end_date=end,
                        duration=seconds))
                    path = try_log_path(folder, "e2e_demo", run_id, task_id, -1, tries)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("\n".join(LOG_LINES) + "\n")
                    if tries == 2:
                        first = try_log_path(folder, "e2e_demo", run_id, task_id, -1, 1)
                        first.write_text("[2025-01-01T06:00:01Z] {runtime.py:88} INFO - "
                                         "Running try 1\n[2025-01-01T06:00:02Z] {task.py:3} "
                                         "ERROR - AssertionError: try one failed\n")
                clock = end
    return ids


@dataclass
class Watch:
    """JavaScript errors and 4xx/5xx answers seen by a browser context."""

    prefix: str = "depth"
    problems: list[str] = field(default_factory=list)
    counter: int = 0

    def attach(self, context) -> None:
        context.on("page", self._page)
        for page in context.pages:
            self._page(page)
        context.on("response", self._response)

    def _page(self, page) -> None:
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: self.problems.append(
            f"console {msg.type}: {msg.text} ({page.url})") if msg.type == "error" else None)

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status} {response.request.method} "
                                 f"{response.url}")

    def check(self) -> None:
        assert not self.problems, "problems on the pages:\n" + "\n".join(self.problems)

    def shot(self, page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.counter += 1
        path = SCREENSHOTS / f"{self.prefix}-{self.counter:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
