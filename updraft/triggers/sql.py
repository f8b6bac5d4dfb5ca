"""The SQL trigger: fires when a query's first row says so."""

from __future__ import annotations

import asyncio
from typing import Any

from updraft.triggers.base import BaseTrigger, TriggerEvent


class SqlSensorTrigger(BaseTrigger):
    """Runs ``sql`` on the ``conn_id`` connection every ``poke_interval`` seconds until the
    first cell of its first row is truthy; the payload is that row (a list). No row with
    ``fail_on_empty`` fails the trigger. The query runs in a thread, never on the loop."""

    def __init__(self, conn_id: str, sql: str, parameters: Any = None,
                 hook_params: dict | None = None, fail_on_empty: bool = False,
                 poke_interval: float = 60.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.hook_params = hook_params
        self.fail_on_empty = fail_on_empty
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.sql.SqlSensorTrigger", {
            "conn_id": self.conn_id, "sql": self.sql, "parameters": self.parameters,
            "hook_params": self.hook_params, "fail_on_empty": self.fail_on_empty,
            "poke_interval": self.poke_interval})

    def _first_row(self) -> list | None:
        from updraft.exceptions import UpdraftException
        from updraft.hooks.base import BaseHook

        hook = BaseHook.get_connection(self.conn_id).get_hook(hook_params=self.hook_params)
        records = hook.get_records(self.sql, self.parameters)
        if not records:
            if self.fail_on_empty:
                raise UpdraftException("No rows returned, raising as per fail_on_empty flag")
            return None
        row = list(records[0])
        return row if row and row[0] else None

    async def run(self):
        while True:
            row = await asyncio.to_thread(self._first_row)
            if row is not None:
                yield TriggerEvent([v if isinstance(v, (str, int, float, bool)) or v is None
                                    else str(v) for v in row])
                return
            await asyncio.sleep(self.poke_interval)


__all__ = ["SqlSensorTrigger"]
