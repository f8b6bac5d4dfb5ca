"""FileSensor: waits for a file or folder (glob patterns allowed) to exist."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from glob import glob

from updraft.sensors.base import BaseSensorOperator


class FileSensor(BaseSensorOperator):
    """Waits until ``filepath`` (relative to the ``fs_conn_id`` connection's path) exists.

    A glob pattern matches if any file matches, or any matching folder holds a file;
    ``recursive=True`` lets ``**`` match folders at any depth.
    """

    template_fields: Sequence[str] = ("filepath",)
    ui_color = "#91818a"

    def __init__(self, *, filepath: str, fs_conn_id: str = "fs_default",
                 recursive: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.filepath = filepath
        self.fs_conn_id = fs_conn_id
        self.recursive = recursive

    def poke(self, context: dict) -> bool:
        from updraft.hooks.filesystem import FSHook

        hook = FSHook(self.fs_conn_id)
        full_path = os.path.join(hook.get_path(), self.filepath)
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
