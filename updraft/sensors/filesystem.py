"""FileSensor: waits for a file or folder (glob patterns allowed) to exist."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from glob import glob

from updraft.exceptions import UpdraftException
from updraft.sensors.base import BaseSensorOperator


class FileSensor(BaseSensorOperator):
    """Waits until ``filepath`` (relative to the ``fs_conn_id`` connection's path) exists.

    A glob pattern matches if any file matches, or any matching folder holds a file;
    ``recursive=True`` lets ``**`` match folders at any depth.
    """

    template_fields: Sequence[str] = ("filepath",)
    ui_color = "#91818a"

    def __init__(self, *, filepath: str, fs_conn_id: str = "fs_default",
                 recursive: bool = False, deferrable: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filepath = filepath
        self.fs_conn_id = fs_conn_id
        self.recursive = recursive
        self.deferrable = deferrable

    @property
    def path(self) -> str:
        from updraft.hooks.filesystem import FSHook

        return os.path.join(FSHook(self.fs_conn_id).get_path(), self.filepath)

    def execute(self, context: dict):
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        from updraft.triggers.file import FileTrigger

        # Waits in a triggerer, holding no worker slot (ADR 11).
        self.defer(trigger=FileTrigger(filepath=self.path, recursive=self.recursive,
                                       poke_interval=self.poke_interval),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: dict, event=None) -> None:
        """The file trigger fired."""
        if not event:
            raise UpdraftException("Stop sensing: the file trigger fired without a file")
        self.log.info("%s found", self.filepath)
        return None

    def poke(self, context: dict) -> bool:
        full_path = self.path
        self.log.info("Poking for file %s", full_path)
        for path in glob(full_path, recursive=self.recursive):
            if os.path.isfile(path):
                modified = datetime.fromtimestamp(os.path.getmtime(path)).strftime("%Y%m%d%H%M%S")
                self.log.info("Found File %s last modified: %s", path, modified)
                return True
            for _, _, files in os.walk(path):
                if files:
                    return True
        return False
