"""BashOperator: run a bash command; its last line of output is the task's XCom."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable

from updraft.exceptions import UpdraftException, UpdraftSkipException
from updraft.operators.base import BaseOperator


def context_to_env(context) -> dict[str, str]:
    """The environment variables that tell a subprocess which task it runs for."""
    values = {
        "DAG_ID": context["dag"].dag_id if context.get("dag") else None,
        "TASK_ID": context["task"].task_id if context.get("task") else None,
        "LOGICAL_DATE": context["logical_date"].isoformat() if context.get("logical_date")
        else None,
        "EXECUTION_DATE": context["logical_date"].isoformat() if context.get("logical_date")
        else None,
        "TRY_NUMBER": str(context["ti"].try_number) if context.get("ti") else None,
        "DAG_RUN_ID": context.get("run_id"),
        "DAG_OWNER": context["task"].owner if context.get("task") else None,
    }
    env: dict[str, str] = {}
    for key, value in values.items():
        if value is not None:
            env[f"UPDRAFT_CTX_{key}"] = str(value)
            env[f"AIRFLOW_CTX_{key}"] = str(value)
    return env


class BashOperator(BaseOperator):
    """Runs ``bash_command`` (templated; a ``.sh`` path is read as a template file)."""

    template_fields = ("bash_command", "env", "cwd")
    template_fields_renderers = {"bash_command": "bash", "env": "json"}
    template_ext = (".sh", ".bash")
    ui_color = "#f0ede4"

    def __init__(self, *, bash_command: str, env: dict[str, str] | None = None,
                 append_env: bool = False, output_encoding: str = "utf-8",
                 skip_exit_code: int | None = None, skip_on_exit_code: int | list[int] | None = 99,
                 cwd: str | None = None, output_processor: Callable[[str], object] = lambda x: x,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.append_env = append_env
        self.output_encoding = output_encoding
        if skip_exit_code is not None:
            skip_on_exit_code = skip_exit_code
        if skip_on_exit_code is None:
            self.skip_on_exit_code: list[int] = []
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = [skip_on_exit_code]
        else:
            self.skip_on_exit_code = list(skip_on_exit_code)
        self.cwd = cwd
        self.output_processor = output_processor
        self._process: subprocess.Popen | None = None

    def get_env(self, context) -> dict[str, str]:
        """The environment of the command: given env (plus os.environ if appended)."""
        env = self.env
        if env is None:
            env = dict(os.environ)
        elif self.append_env:
            env = {**os.environ, **env}
        env = {str(k): str(v) for k, v in env.items()}
        env.update(context_to_env(context))
        return env

    def execute(self, context):
        if self.cwd is not None:
            if not os.path.exists(self.cwd):
                raise UpdraftException(f"Can not find the cwd: {self.cwd}")
            if not os.path.isdir(self.cwd):
                raise UpdraftException(f"The cwd {self.cwd} must be a directory")
        if not isinstance(self.bash_command, str) or not self.bash_command.strip():
            raise UpdraftException(f"Task {self.task_id!r}: bash_command is empty")
        self.log.info("Running command: %s", ["bash", "-c", self.bash_command])
        process = subprocess.Popen(
            ["bash", "-c", self.bash_command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=self.cwd, env=self.get_env(context), start_new_session=True)
        self._process = process
        last_line = ""
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip("\n")
            last_line = line
            self.log.info("%s", line)
        process.wait()
        self.log.info("Command exited with return code %s", process.returncode)
        self._process = None
        if process.returncode in self.skip_on_exit_code:
            raise UpdraftSkipException(f"Bash command returned exit code {process.returncode}. "
                                       "Skipping.")
        if process.returncode != 0:
            raise UpdraftException(f"Bash command failed. The command returned a non-zero exit "
                                   f"code {process.returncode}.")
        return self.output_processor(last_line)

    def on_kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            self.log.info("Sending SIGTERM to the command's process group")
            try:
                os.killpg(os.getpgid(process.pid), signal.SIGTERM)
            except ProcessLookupError:
                pass
