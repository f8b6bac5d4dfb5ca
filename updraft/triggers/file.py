"""The file trigger: fires when a file (or a glob pattern's match) exists."""

from __future__ import annotations

import asyncio
import os
from glob import glob
from typing import Any

from updraft.triggers.base import BaseTrigger, TriggerEvent


def _found(pattern: str, recursive: bool) -> str | None:
    """The first file matching ``pattern`` (or inside a matching folder), else None."""
    for path in glob(pattern, recursive=recursive):
        if os.path.isfile(path):
            return path
        for root, _dirs, files in os.walk(path):
            if files:
                return os.path.join(root, files[0])
    return None


class FileTrigger(BaseTrigger):
    """Fires when ``filepath`` exists, looking every ``poke_interval`` seconds (the check
    runs in a thread: a slow file system never blocks the triggerer's loop)."""

    def __init__(self, filepath: str, recursive: bool = False,
                 poke_interval: float = 5.0) -> None:
        super().__init__()
        self.filepath = filepath
        self.recursive = recursive
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.file.FileTrigger",
                {"filepath": self.filepath, "recursive": self.recursive,
                 "poke_interval": self.poke_interval})

    async def run(self):
        while True:
            path = await asyncio.to_thread(_found, self.filepath, self.recursive)
            if path is not None:
                self.log.info("Found %s", path)
                yield TriggerEvent(True)
                return
            await asyncio.sleep(self.poke_interval)


__all__ = ["FileTrigger"]
