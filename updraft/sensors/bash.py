"""BashSensor: waits until a bash command exits with 0."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from tempfile import NamedTemporaryFile, TemporaryDirectory

from updraft.exceptions import UpdraftFailException
from updraft.sensors.base import BaseSensorOperator


class BashSensor(BaseSensorOperator):
    """Runs ``bash_command`` at each poke: exit 0 is true, anything else false.

    With ``retry_exit_code`` only that code means "poke again"; other non-zero codes fail
    the task at once.
    """

    template_fields: Sequence[str] = ("bash_command", "env")

    def __init__(self, *, bash_command: str, env: dict | None = None,
                 output_encoding: str = "utf-8", retry_exit_code: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.output_encoding = output_encoding
        self.retry_exit_code = retry_exit_code

    def poke(self, context: dict) -> bool:
        with TemporaryDirectory(prefix="updrafttmp") as tmp_dir, \
                NamedTemporaryFile(dir=tmp_dir, prefix=self.task_id) as script:
            script.write(self.bash_command.encode("utf-8"))
            script.flush()
            self.log.info("Running command: %s", self.bash_command)
            with subprocess.Popen(["bash", script.name], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, close_fds=True, cwd=tmp_dir,
                                  env=self.env, start_new_session=True) as proc:
                if proc.stdout:
                    self.log.info("Output:")
                    for line in iter(proc.stdout.readline, b""):
                        self.log.info(line.decode(self.output_encoding).rstrip())
                proc.wait()
        code = proc.returncode
        self.log.info("Command exited with return code %s", code)
        if code == 0:
            return True
        if self.retry_exit_code is not None:
            if code == self.retry_exit_code:
                self.log.info("Return code matches retry code, will retry later")
                return False
            raise UpdraftFailException(f"Command exited with return code {code}")
        self.log.info("Non-zero return code and no retry code set, will retry later")
        return False


__all__ = ["BashSensor"]
